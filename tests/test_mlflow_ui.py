"""`gansweep ui` on a finished smoke sweep, opened in headless Chromium (Debian's chromium + chromium-driver, driven
by Selenium): the link it prints opens MLflow on the runs table (not the GenAI pages), the table shows the sweep's
parent run and, listed flat by the ranking metric, every trial with its training set in the Dataset column; a
trial's page shows its sample grid, and the parent's page its per-step image of every arm's grid."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from sweep.execution.driver import run_sweep
from sweep.plan import Options, resolve_plan
from tests.servers import chromium, free_port, stop, wait_http
from tests.sweep_helpers import TINY, sweep_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    plan = resolve_plan("demo-grid", seeds=1, overrides=TINY, only=("none", "hflip@64"),
                        options=Options(storage=str(root / "results"), name="smoke", in_process=True, verbose=0,
                                        mlflow_uri=f"sqlite:///{root}/mlflow.db"))
    assert run_sweep(plan).ok  # with the report: the parent's answer and its image of every arm
    return plan


@pytest.fixture(scope="module")
def ui(sweep):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sweep", "ui", "--mlflow-uri", sweep.options.mlflow_uri,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=240, proc=proc)
        printed = []
        while len(printed) < 3:  # the address line and the two links come before the server's own output
            printed.append(proc.stdout.readline())
        yield port, printed
    finally:
        stop(proc)


def _wait_text(driver, needles, timeout=60.0) -> str:
    deadline = time.time() + timeout
    while True:
        text = driver.find_element("tag name", "body").text
        if all(n in text for n in needles) or time.time() > deadline:
            return text
        time.sleep(0.5)


def test_runs_table_datasets_and_sample_grids(sweep, ui):
    port, printed = ui
    links = dict(re.findall(r"^\s+(.+?):\s+(http\S+)$", "".join(printed), re.M))
    runs_link = links["runs table"]
    flat_link = next(v for k, v in links.items() if k.startswith("every trial"))
    assert runs_link.endswith("workflowType=machine_learning") and "orderByKey=metrics.%60kid_mean_effnet%60" in flat_link

    client, (parent,), children = sweep_runs(sweep.options.mlflow_uri)
    names = sorted(r.info.run_name for r in children)
    assert len(names) == 2
    with chromium() as driver:
        driver.get(runs_link)
        text = _wait_text(driver, ["Run Name", parent.info.run_name])
        # the runs table of model training, not GenAI's traces overview (which a plain experiment link opens in a
        # fresh browser: MLflow 3.17's UI takes the view from `workflowType`, not from the experiment's kind tag)
        assert "/runs" in driver.current_url and "workflowType=genai" not in driver.current_url, driver.current_url
        assert "Run Name" in text and parent.info.run_name in text, text[:2000]
        assert "Token Usage" not in text and "Tokens per Trace" not in text
        driver.get(flat_link)
        # every trial, and the Dataset column filled with its training set (`sweep.mlflow.layout.dataset_inputs`)
        trained_on = sorted(f"{r.data.params['dataset']}: {r.data.params['arm']}" for r in children)
        text = _wait_text(driver, names + ["Dataset"] + trained_on)
        assert all(name in text for name in names), text[:2000]
        assert "Dataset" in text and all(t in text for t in trained_on), text[:2000]

        child = children[0]
        grid = _render_image(driver, client, port, child)
        # the parent's per-step image of every arm (`sweep.mlflow.layout.log_arm_grids`): both arms' grids stacked
        both = _render_image(driver, client, port, parent)
        assert both.height >= 2 * grid.height and both.width > grid.width


def _render_image(driver, client, port, run):
    """Open the run's last logged image on its artifact page; assert the browser decoded it at its own width, and
    return it (as PIL reads the artifact)."""
    from PIL import Image

    pngs = [a.path for a in client.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
    assert pngs, f"{run.info.run_name} has no image"
    driver.get(f"http://127.0.0.1:{port}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
               f"/artifacts/{pngs[-1]}?workflowType=machine_learning")
    deadline = time.time() + 60
    shown = []
    while time.time() < deadline and not shown:
        shown = [im for im in driver.find_elements("tag name", "img")
                 if (im.get_attribute("src") or "").startswith("blob:") and im.get_property("naturalWidth")]
        time.sleep(0.5)
    assert shown, f"the image of {run.info.run_name} did not render"
    with Image.open(client.download_artifacts(run.info.run_id, pngs[-1])) as im:
        assert shown[0].get_property("naturalWidth") == im.width  # the image itself, decoded by the browser
        return im.copy()

"""`gansweep ui` on a finished smoke sweep, opened in headless Chromium (Debian's chromium + chromium-driver, driven
by Selenium): the link it prints opens MLflow on the runs table (not the GenAI pages), the table shows the sweep's
parent run and, listed flat by the ranking metric, every trial; a trial's page shows its sample grid."""

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
    assert run_sweep(plan, report=False).ok
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


def test_runs_table_and_a_trials_sample_grid(sweep, ui):
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
        text = _wait_text(driver, names)
        assert all(name in text for name in names), text[:2000]

        child = children[0]
        grids = [a.path for a in client.list_artifacts(child.info.run_id, "images") if a.path.endswith(".png")]
        driver.get(f"http://127.0.0.1:{port}/#/experiments/{parent.info.experiment_id}/runs/{child.info.run_id}"
                   f"/artifacts/{grids[-1]}?workflowType=machine_learning")
        deadline = time.time() + 60
        shown = []
        while time.time() < deadline and not shown:
            shown = [im for im in driver.find_elements("tag name", "img")
                     if (im.get_attribute("src") or "").startswith("blob:") and im.get_property("naturalWidth")]
            time.sleep(0.5)
        assert shown, "the sample grid did not render"
        from PIL import Image

        local = client.download_artifacts(child.info.run_id, grids[-1])
        with Image.open(local) as im:
            assert shown[0].get_property("naturalWidth") == im.width  # the grid itself, decoded by the browser

"""Study 2 end to end: a tiny `demo-highres` through real Ray Tune into MLflow (5 methods x 2 budgets), the equal-time
budget respected, the SRCNN scored against bicubic, the report's tables, and a preference survey on the sweep's own
records and held-out photos whose votes reach the report and the MLflow parent run."""

from __future__ import annotations

import pytest
import ray

from gan.methods import METHODS
from sweep.execution.driver import report_sweep, run_sweep
from sweep.plan import Options, resolve_plan
from sweep.records import read_sweep, reference_table
from tests.sweep_helpers import grid_steps, metric_steps, sweep_runs

pytestmark = pytest.mark.slow
BUDGET = 2.5  # seconds of training in the equal-time mode


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("highres")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        plan = resolve_plan("demo-highres", seeds=1, options=Options(
            storage=str(root / "results"), name="hr", mlflow_uri=f"sqlite:///{root}/mlflow.db", cpus_per_trial=1,
            verbose=0), overrides=dict(steps=4, eval_every=2, srcnn_steps=4, time_budget=BUDGET, eval_samples=8,
                                       is_splits=2))
        result = run_sweep(plan)
    finally:
        ray.shutdown()
    return plan, result


def test_every_method_under_both_budgets(sweep):
    plan, result = sweep
    assert result.ok and result.outcomes == {"finished": 10}
    records = read_sweep(plan.path)
    assert sorted((r.arm, r.config["time_budget"]) for r in records) == sorted(
        (m, b) for m in METHODS for b in (0.0, BUDGET))
    for r in records:
        last = r.last
        if r.config["time_budget"] == 0:  # equal iterations: exactly `steps`, whatever the time
            assert last["step"] == 4
        else:  # equal time: stopped within one iteration of the budget
            per_iteration = last["train_seconds"] / max(last["step"], 1)
            assert BUDGET <= last["train_seconds"] < BUDGET + 2 * per_iteration + 0.5, (r.arm, last)
        if r.arm == "dcgan64+srcnn":
            assert last["sr_step"] == 4  # the SRCNN's own iterations, counted apart from the GAN's
            assert {"psnr_srcnn", "psnr_bicubic", "ssim_srcnn", "ssim_bicubic"} <= set(last)
    # equal time: the methods reached different iteration counts, and the cheapest (dcgan32) the most
    timed = {r.arm: r.last["step"] for r in records if r.config["time_budget"]}
    assert timed["dcgan32"] == max(timed.values()) and timed["stackgan128"] < timed["dcgan32"]


def test_mlflow_holds_every_trial_with_its_device(sweep):
    plan, _ = sweep
    client, (parent,), children = sweep_runs(plan.options.mlflow_uri)
    assert len(children) == 10 and parent.info.status == "FINISHED"
    for run in children:
        assert run.data.tags["gansweep.device"].startswith("cpu")  # equal-time comparisons name their hardware
        assert run.data.params["method"] in METHODS and run.data.params["arm"] == run.data.params["method"]
        steps = metric_steps(client, run.info.run_id, "kid_mean_effnet")
        assert steps and grid_steps(client, run.info.run_id)[-1] == steps[-1]
    assert "floor_kid_mean_effnet" in parent.data.metrics
    assert "held-out real images" in parent.data.tags["gansweep.reference"]


def test_report_has_the_published_tables(sweep):
    plan, result = sweep
    md = next(f for f in result.files if f.name == "summary.md").read_text()
    assert "## equal iterations" in md and f"## equal time ({BUDGET:g} s)" in md and "Δ vs dcgan64" in md
    assert "iterations" in md and "train time" in md and "floor" in md
    assert "## Super-resolution: the SRCNN against plain bicubic" in md
    assert "Reference for skimage-photos (seed 0): 77 held-out real images" in md
    names = {f.name for f in result.files}
    assert {"vs_seconds_kid_mean_effnet.png", "samples_mosaic.png", "final_kid_mean_effnet.png"} <= names


def test_a_survey_on_the_sweep_reaches_the_report_and_mlflow(sweep):
    from sweep.survey import create_app, pool_from_records, votes_path

    plan, _ = sweep
    real = reference_table(plan.path)
    assert real is not None
    pool = pool_from_records(read_sweep(plan.path), plan.design, methods=["dcgan64", "stackgan128"], real_table=real)
    assert set(pool.methods) == {"dcgan64", "stackgan128"} and pool.has_real
    assert pool.comparisons == {(("time_budget", b),): ("dcgan64", "stackgan128") for b in (0.0, BUDGET)}
    app = create_app(pool, votes_path(plan.path), n_pairs=6, real_share=0.0, seed=3)
    for participant in range(2):
        client = app.test_client()
        client.get("/")
        while True:
            pair = client.get("/api/next").get_json()
            if pair["done"]:
                break
            assert client.post("/api/vote", json={"token": pair["token"], "choice": "left"}).status_code == 200
    files = report_sweep(plan.path)
    md = next(f for f in files if f.name == "summary.md").read_text()
    assert "## Human preference survey" in md and "survey_selection_rate.png" in {f.name for f in files}
    # the published table: each budget's methods with their selection rate beside iterations and hours
    from sweep.survey import selection_rates

    rates = selection_rates(plan.path)
    assert len(rates) == 4 and set(rates["decided"]) == {6} and set(rates["time_budget"]) == {0.0, BUDGET}
    for budget, g in rates.groupby("time_budget"):
        assert g["chosen"].sum() == 6  # every decided pair chose one of the two
        title = f"equal time ({budget:g} s)" if budget else "equal iterations"
        section = md.split(f"## {title}")[1].split("\n## ")[0]
        assert "selected (survey)" in section and "iterations" in section
        for _, r in g.iterrows():
            row = next(line for line in section.splitlines() if f"| {r['arm']} " in line)
            assert f"{r['rate']:.0%} [{r['ci_low']:.0%}, {r['ci_high']:.0%}] of 6" in row
    _, (parent,), _ = sweep_runs(plan.options.mlflow_uri)
    assert parent.data.metrics["survey_votes"] == 12 and parent.data.metrics["survey_participants"] == 2
    assert {parent.data.metrics[f"survey_time_budget_{b}_votes"] for b in (0.0, BUDGET)} == {6}  # per budget

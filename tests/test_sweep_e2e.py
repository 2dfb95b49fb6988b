"""Sweeps end to end through real Ray Tune (one 2-CPU Ray for the module) into a real sqlite MLflow store.

Covers: the smoke sweep (parent/child runs, params, metric history, sample grids, the donor run, the report), a
trial whose worker is SIGKILLed mid-run resuming from its checkpoint with the same final numbers as an
uninterrupted run, diverging trials, and a second `generated` sweep reusing the donor cache.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch

from sweep.execution.driver import run_sweep
from sweep.plan import Options, resolve_plan
from sweep.records import read_sweep
from tests.sweep_helpers import TINY, grid_steps, metric_steps, sweep_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chaos_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("chaos")


@pytest.fixture(scope="module", autouse=True)
def ray_session(chaos_dir):
    # Workers see GANSWEEP_CHAOS_DIR; the fault hook stays idle until a test writes kill_at_step there.
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"GANSWEEP_CHAOS_DIR": str(chaos_dir)}})
    yield
    ray.shutdown()


def sweep_in(tmp_path, study="demo-grid", only=(), in_process=False, name="s", storage=None, **settings):
    opts = Options(storage=str(storage or tmp_path / "results"), name=name, cpus_per_trial=1,
                   mlflow_uri=f"sqlite:///{tmp_path}/mlflow.db", in_process=in_process, verbose=0)
    sweep = resolve_plan(study, seeds=1, overrides={**TINY, **settings}, only=tuple(only), options=opts)
    return sweep, sweep.options


def test_smoke_sweep_writes_mlflow_runs_and_report(tmp_path):
    sweep, opts = sweep_in(tmp_path)
    result = run_sweep(sweep)
    files = result.files
    assert result.ok and result.outcomes == {"finished": 12}

    client, parents, children = sweep_runs(opts.mlflow_uri)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["gansweep.study"] == "demo-grid" and parent.data.tags["gansweep.sweep_path"] == sweep.path
    assert json.loads(parent.data.tags["gansweep.cluster_resources"])["CPU"] == 2
    trials = [r for r in children if r.data.tags["gansweep.role"] == "trial"]
    donors = [r for r in children if r.data.tags["gansweep.role"] == "donor"]
    assert len(trials) == 12 and len(donors) == 1 and "arm" not in donors[0].data.params
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert sorted(r.data.params["arm"] for r in trials) == sorted(c.arm for c in sweep.configs)
    records = {r.trial_id: r for r in read_sweep(sweep.path)}
    for run in trials:
        assert run.info.status == "FINISHED" and run.data.tags["gansweep.outcome"] == "finished"
        assert run.info.run_name == records[run.data.tags["gansweep.trial_id"]].name
        assert run.data.params["dataset"] == "lfw-subset" and run.data.params["steps"] == "4"
        assert metric_steps(client, run.info.run_id, "fid_effnet") == [2, 4]
        assert metric_steps(client, run.info.run_id, "loss_d") == [2, 4]
        assert grid_steps(client, run.info.run_id) == [2, 4]
        assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/generator.pt"]
    # The final generator loads safely and samples the arm again, exactly as scored.
    from gan.imagetable import read_image_table
    from gan.checkpoint import load_generator
    from gan.train import eval_noise, sample

    record = next(iter(records.values()))
    state = load_generator(record.weights)
    cfg = state.cfg
    assert cfg.arm == record.arm and cfg.seed == record.seed
    scored = read_image_table(record.final_samples).images
    assert torch.equal(sample(state, eval_noise(cfg, cfg.eval_samples), size=cfg.image_size), scored)
    # The report: next to the results and on the parent run, with the answer.
    names = {Path(f).name for f in files}
    assert {"results.parquet", "summary.md", "final_fid_effnet.png", "final_is_mean_effnet.png"} <= names
    df = pd.read_parquet(Path(sweep.path) / "report" / "results.parquet")
    assert len(df) == 24 and set(df["step"]) == {2, 4}
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/summary.md" in parent_files
    assert "summary.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    # One seed per arm cannot rank: no best arm, and the parent says why; the seeds the plan resolved are logged.
    assert not any(k.startswith("gansweep.best") for k in parent.data.tags)
    assert parent.data.tags["gansweep.verdict.lfw-subset.64"] == "unranked: no arm has 2 finished seeds"
    assert parent.data.metrics["seeds_per_arm"] == 1 and parent.data.params["seeds"] == "1"
    # inputs.json: each input's reference, floor and its leakage probes' cross-validated rates on real images
    from gan.metrics.schema import LEAKAGE_DA, leakage_keys
    from sweep.records import read_inputs

    (entry,) = read_inputs(sweep.path)
    assert entry["held_out"] and set(entry["probe"]) == {leakage_keys("effnet", da)[0] for da in LEAKAGE_DA}
    assert all(0 <= r["fpr"] <= 1 and 0 <= r["tpr"] <= 1 for r in entry["probe"].values())
    assert entry["probe"][leakage_keys("effnet", "vflip")[0]]["measurable"]  # upside-down faces: seen
    assert "probe on held-out real images (TPR / FPR)" in (Path(sweep.path) / "report" / "summary.md").read_text()
    # which reference and split, and memorisation: per trial in MLflow, its floor on the parent, a report section
    assert (entry["reference"], entry["split"]) == ("heldout", "image")  # the embedded faces carry no names
    assert parent.data.tags["gansweep.reference_set"] == "heldout" and parent.data.tags["gansweep.split"] == "image"
    for run in trials:
        assert 0 <= run.data.metrics["memorisation_effnet"] <= 1 and run.data.metrics["iters_per_s"] > 0
    assert 0 <= parent.data.metrics["floor_memorisation_effnet"] <= 1
    assert "## Memorisation" in (Path(sweep.path) / "report" / "summary.md").read_text()


def test_killed_worker_resumes_from_checkpoint_with_same_numbers(tmp_path, chaos_dir):
    settings = dict(steps=6)
    # Reference: the same trial, uninterrupted, in-process with the same thread count.
    ref, ref_opts = sweep_in(tmp_path / "ref", only=["hflip@64"], in_process=True, **settings)
    run_sweep(ref, report=False)
    (reference,) = read_sweep(ref.path)

    (chaos_dir / "kill_at_step").write_text("4")  # the worker dies right after reporting step 4
    sweep, opts = sweep_in(tmp_path / "chaos", only=["hflip@64"], **settings)
    run_sweep(sweep, report=False)
    (chaos_dir / "kill_at_step").unlink()
    assert (chaos_dir / "killed").exists(), "the fault was never injected"

    (record,) = read_sweep(sweep.path)
    # Restored from the step-4 (or step-2) checkpoint and continued to the end by a second worker process.
    assert record.last["step"] == 6 and len({report.pid for report in record.timeline}) == 2
    for key in ("loss_d", "loss_g", "fid_effnet", "is_mean_effnet", "kid_mean_effnet"):
        assert record.last[key] == reference.last[key], key
    # MLflow: one run for the trial, each step once.
    client, _, children = sweep_runs(opts.mlflow_uri)
    (run,) = [r for r in children if r.data.tags["gansweep.trial_id"] == record.trial_id]
    assert metric_steps(client, run.info.run_id, "fid_effnet") == [2, 4, 6]
    assert run.data.tags["gansweep.outcome"] == "finished"


def test_a_failed_trial_fails_the_sweep_and_the_command(tmp_path, chaos_dir, capsys):
    """A trial that raises: the sweep goes on with the others, the parent run ends FAILED, the command exits 1 and
    says how to rerun it and where to browse it."""
    from sweep.cli.run import _finish

    (chaos_dir / "fail_at_step").write_text("2")
    try:
        sweep, opts = sweep_in(tmp_path, only=["none"])
        sweep = dataclasses.replace(sweep, options=dataclasses.replace(opts, max_failures=0))  # no restart
        result = run_sweep(sweep, report=False)
    finally:
        (chaos_dir / "fail_at_step").unlink()
    assert result.outcomes == {"failed": 1} and not result.ok
    assert _finish(sweep, result) == 1
    out, err = capsys.readouterr()
    assert f"browse: gansweep ui --mlflow-uri {opts.mlflow_uri}\n" in out and "trials: 1 failed" in out
    assert f"`gansweep resume {sweep.path}` reruns them" in err
    _, parents, children = sweep_runs(opts.mlflow_uri)
    assert parents[0].info.status == "FAILED"
    assert [(r.info.status, r.data.tags["gansweep.outcome"]) for r in children] == [("FAILED", "failed")]


def test_diverging_trials_end_with_diverged_and_the_sweep_goes_on(tmp_path):
    sweep, opts = sweep_in(tmp_path, only=["none", "hflip@64"], lr=1e30)
    result = run_sweep(sweep, report=False)
    assert result.ok and result.outcomes == {"diverged": 2}  # a diverged GAN is a result, not a failure
    client, _, children = sweep_runs(opts.mlflow_uri)
    assert len(children) == 2
    for run in children:
        assert run.data.tags["gansweep.outcome"] == "diverged"
        assert run.data.metrics["diverged"] == 1.0


def test_generated_sweep_reuses_the_donor_cache(tmp_path):
    storage = tmp_path / "results"
    only = ["generated@64", "hflip+generated@128"]
    first, opts = sweep_in(tmp_path, only=only, name="first", storage=storage, in_process=True)
    run_sweep(first, report=False)
    second, opts2 = sweep_in(tmp_path, only=only, name="second", storage=storage, in_process=True)
    run_sweep(second, report=False)
    client, parents, children = sweep_runs(opts.mlflow_uri)
    donors = {r.data.tags["mlflow.parentRunId"]: r for r in children if r.data.tags["gansweep.role"] == "donor"}
    runs = {p.data.tags["gansweep.sweep_path"]: p.info.run_id for p in parents}
    assert len(parents) == 2 and len(donors) == 2  # one run under each sweep: the donor its arms drew from
    trained, reused = donors[runs[first.path]], donors[runs[second.path]]
    assert trained.data.tags["gansweep.donor"] == "trained by this sweep"  # trained once, by the first sweep
    assert reused.data.tags["gansweep.donor"].startswith("reused from the donor cache")
    assert trained.data.tags["gansweep.trial_id"] == reused.data.tags["gansweep.trial_id"]  # the same donor
    assert reused.data.metrics["train_seconds"] == trained.data.metrics["train_seconds"] > 0
    (donor_folder,) = list((storage / "donors").iterdir())
    assert (donor_folder / "samples.parquet").exists() and (donor_folder / "state.pt").exists()
    # Both sweeps trained on the same donor images: identical final numbers per arm.
    def finals(sweep):
        return {r.arm: r.last["fid_effnet"] for r in read_sweep(sweep.path)}
    assert finals(first) == finals(second) and len(finals(first)) == 2


@pytest.mark.parametrize("in_process", [False, True], ids=["tune", "in-process"])
def test_optuna_study(tmp_path, in_process):
    opts = Options(storage=str(tmp_path / "results"), name="o", mlflow_uri=f"sqlite:///{tmp_path}/mlflow.db",
                   in_process=in_process, verbose=0)
    sweep = resolve_plan("optuna-da", num_samples=3, options=opts,
                         overrides={**TINY, "dataset": "lfw-subset", "n_real": 64, "n_heldout": 36,
                                   "extractor": "effnet"})
    run_sweep(sweep, report=in_process)  # in-process with the report: the parent gets Optuna's importances
    opts = sweep.options
    records = read_sweep(sweep.path)
    assert len(records) == 3 and all(r.last["step"] == 4 for r in records)
    if in_process:
        client, (parent,), _ = sweep_runs(opts.mlflow_uri)
        logged = json.loads(Path(client.download_artifacts(parent.info.run_id, "importances.json", str(tmp_path)))
                            .read_text())
        table = dict(logged["data"])  # field -> importance, fANOVA's shares of the metric's variance
        assert "da" in table and set(table) <= {"da", "n_aug", "pair_ratio"}
        assert sum(table.values()) == pytest.approx(1.0)
        assert parent.data.metrics["importance.da"] == pytest.approx(table["da"])
    for c in (r.config for r in records):  # the study's settings, and the conditional space: a ratio other than 0.5 only for pairs
        assert (c["steps"], c["image_size"], c["g_width"]) == (4, 64, 8)
        assert "+" in c["da"] or c["pair_ratio"] == 0.5
    _, _, children = sweep_runs(opts.mlflow_uri)
    assert sorted(r.data.params["arm"] for r in children if r.data.tags["gansweep.role"] == "trial") \
        == sorted(r.arm for r in records)


def test_asha_stops_weak_arms_early(tmp_path):
    opts = Options(storage=str(tmp_path / "results"), name="a", mlflow_uri=f"sqlite:///{tmp_path}/mlflow.db",
                   scheduler="asha", max_concurrent=1, verbose=0)  # one at a time: a fixed rung order
    sweep = resolve_plan("demo-grid", seeds=1, overrides={**TINY, "steps": 8}, only=("none", "contrast@64", "negpos@64",
                                                                       "vflip@64"), options=opts)
    assert run_sweep(sweep, report=False).ok  # stopped early by a scheduler is not a failure
    opts = sweep.options
    last = [r.last["step"] for r in read_sweep(sweep.path)]
    assert len(last) == 4 and max(last) == 8 and min(last) < 8  # at least one arm was cut at a rung
    _, _, children = sweep_runs(opts.mlflow_uri)
    outcomes = sorted(r.data.tags["gansweep.outcome"] for r in children)
    assert "stopped" in outcomes and "finished" in outcomes


def test_unreachable_mlflow_is_backfilled_by_report(tmp_path):
    from sweep.execution.driver import report_sweep

    sweep, _ = sweep_in(tmp_path, only=["none", "hflip@64"], in_process=True)
    sweep = dataclasses.replace(sweep, options=dataclasses.replace(sweep.options, mlflow_uri="http://127.0.0.1:9"))
    assert run_sweep(sweep).ok  # carries on without MLflow
    uri = f"sqlite:///{tmp_path}/later.db"
    report_sweep(sweep.path, mlflow_uri=uri)
    client, parents, children = sweep_runs(uri)
    assert len(parents) == 1 and len(children) == 2
    for run in children:
        assert metric_steps(client, run.info.run_id, "fid_effnet") == [2, 4]
    report_sweep(sweep.path, mlflow_uri=uri)  # twice: still no duplicates
    client, parents, children = sweep_runs(uri)
    assert len(parents) == 1 and len(children) == 2
    assert all(metric_steps(client, r.info.run_id, "fid_effnet") == [2, 4] for r in children)


def test_sweep_to_a_storage_uri(tmp_path):
    """--storage as a URI (file:// here, s3:// on a cluster): results, donor cache and report go through pyarrow."""
    opts = Options(storage=f"file://{tmp_path}/remote", name="u", mlflow_uri=f"sqlite:///{tmp_path}/mlflow.db",
                   verbose=0)
    sweep = resolve_plan("demo-grid", seeds=1, overrides=TINY, only=("none", "generated@64"), options=opts)
    assert sweep.path == f"file://{tmp_path}/remote/u"
    files = run_sweep(sweep).files
    opts = sweep.options
    root = tmp_path / "remote"
    assert (root / "u" / "gansweep.json").exists() and (root / "u" / "report" / "summary.md").exists()
    (donor,) = list((root / "donors").iterdir())
    assert (donor / "samples.parquet").exists() and (donor / "state.pt").exists()
    assert any(str(f).endswith("summary.md") for f in files)
    client, _, children = sweep_runs(opts.mlflow_uri)
    trials = [r for r in children if r.data.tags["gansweep.role"] == "trial"]
    assert len(trials) == 2
    for run in trials:
        assert metric_steps(client, run.info.run_id, "fid_effnet") == [2, 4]
        assert grid_steps(client, run.info.run_id) == [2, 4]
        assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/generator.pt"]

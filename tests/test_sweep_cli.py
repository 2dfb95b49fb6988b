"""The command line before Ray starts (no Ray here): `gansweep studies`, `run --dry-run`, one-line input and data
errors, and `resume` / `report` checking a sweep's recorded configs against what today's code resolves."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from gan.config import TrialConfig, flat
from sweep.cli import main
from sweep.plan import RECORD, Options, configs_changed, plan_for_resume, resolve_plan
from sweep.records import inprocess_trial_id, trial_dirname


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_studies_lists_arm_counts(capsys):
    code, out, _ = run_cli(capsys, "studies")
    assert code == 0
    counts = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()}
    assert counts == {"paper": 96, "paper-celeba": 48, "paper-pomeranian": 48, "demo": 18, "demo-grid": 36,
                      "demo-daug": 36,
                      "ratios": 84, "optuna-da": 30, "paper-highres": 30,
                      "demo-highres": 30}  # grids: 3 seeds per arm, the demos 6


def test_dry_run_json_has_exactly_the_demo_arms(capsys):
    code, out, _ = run_cli(capsys, "run", "demo-grid", "--dry-run", "--json", "--seeds", "1")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    arms = sorted((r["da"], r["n_aug"]) for r in rows)
    singles = [("none", 0)] + [(t, 64) for t in ("contrast", "negpos", "hflip", "vflip", "generated")]
    pairs = [(p, n) for p in ("contrast+hflip", "contrast+generated", "hflip+generated") for n in (64, 128)]
    assert arms == sorted(singles + pairs)
    for r in rows:
        assert r["dataset"] == "lfw-subset" and r["n_real"] == 64 and r["image_size"] == 32
        assert r["extractor"] == "effnet" and r["pair_ratio"] == 0.5
        cfg = TrialConfig(**{k: v for k, v in r.items() if k != "arm"})
        assert cfg.arm == r["arm"]


def test_dry_run_overrides_seeds_and_only(capsys):
    code, out, _ = run_cli(capsys, "run", "demo-grid", "--dry-run", "--json", "--seeds", "3", "--steps", "50",
                           "--image-size", "64", "--only", "none", "--only", "hflip@64", "--set", "eval_every=25")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["arm"], r["seed"]) for r in rows) == sorted(
        (a, s) for a in ("none", "hflip@64") for s in (0, 1, 2))
    assert {(r["steps"], r["image_size"], r["eval_every"]) for r in rows} == {(50, 64, 25)}


def test_dry_run_reads_no_data(capsys, tmp_path):
    # The CelebA root does not exist: a dry run still resolves and prints every trial, with an absolute root.
    code, out, _ = run_cli(capsys, "run", "paper-celeba", "--dry-run", "--json", "--dataset", "celeba:nowhere")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 48 and all(r["dataset"].startswith("celeba:/") for r in rows)  # 16 arms x 3 seeds


def test_dry_run_of_paper_pomeranian_shows_a_held_out_reference(capsys):
    code, out, _ = run_cli(capsys, "run", "paper-pomeranian", "--dry-run", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert {(r["n_real"], r["n_heldout"], r["reference"], r["split"]) for r in rows} == {(800, 200, "heldout", "auto")}
    assert {r["n_aug"] for r in rows} == {0, 800, 1600}  # DA counts scale with n_real


def test_dry_run_of_an_optuna_study_marks_sampled_points(capsys):
    code, out, _ = run_cli(capsys, "run", "optuna-da", "--dry-run", "--json", "--num-samples", "5")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 5 and all(r["sampled"] for r in rows)


@pytest.mark.parametrize("argv,match", [
    (["run", "nosuch"], "unknown study 'nosuch'; allowed: paper, paper-celeba"),
    (["run", "demo-grid", "--image-size", "48"], "'48' is not one of '32', '64', '128'"),
    (["run", "demo-grid", "--dataset", "imagenet:/x"], "unknown dataset source 'imagenet:/x'; allowed: lfw-subset"),
    (["run", "demo-grid", "--extractor", "clip"], "'clip' is not one of 'effnet', 'inception'"),
    (["run", "demo-grid", "--only", "blur@100"], "unknown arm 'blur@100'"),
    (["run", "demo-grid", "--set", "n_real=1000"], "has 100 images but n_real=1000"),
    (["run", "demo-highres", "--gpus-per-trial", "0.5"], "equal training time, which needs the same hardware"),
    (["run", "demo", "--set", "nosuch=1"], "unknown setting 'nosuch'"),
    (["run", "demo", "--set", "n_real=80"], "lfw-subset (seed 0) can spare only 20 held-out images after the 80 "
                                            "training ones, not n_heldout = 36; lower n_real or n_heldout, or set "
                                            "reference=train"),
    (["run", "demo", "--set", "split=identity"], "split 'identity' needs a source that knows it (celeba, lfw); "
                                                 "lfw-subset allows: auto, image"),
    (["run", "demo", "--metric", "accuracy"], "metric 'accuracy' is not reported by this study; allowed:"),
    (["run", "demo", "--dataset", "celeba:/nonexistent/root"], "CelebA not found"),
    (["resume", "/nonexistent/sweep"], "is not a gansweep sweep folder"),
    (["run", "demo-grid", "--in-process", "--storage", "s3://bucket/x"], "--in-process writes trials to a local folder"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, match):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("gansweep: error: ") and match in err, err


def test_a_new_sweep_never_writes_into_an_existing_one(capsys, tmp_path):
    existing = tmp_path / "results" / "mine"
    existing.mkdir(parents=True)
    (existing / "gansweep.json").write_text("{}")
    code, _, err = run_cli(capsys, "run", "demo-grid", "--storage", str(tmp_path / "results"), "--name", "mine")
    assert code == 2 and "already holds a sweep; continue it with `gansweep resume" in err
    assert (existing / "gansweep.json").read_text() == "{}"


def test_unreadable_data_fails_before_ray_and_writes_nothing(capsys, tmp_path):
    bad = tmp_path / "imgs"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.png").write_bytes(b"not a png")
    code, _, err = run_cli(capsys, "run", "demo-grid", "--dataset", f"folder:{bad}", "--set", "n_real=3",
                           "--storage", str(tmp_path / "r"), "--mlflow-uri", f"sqlite:///{tmp_path}/m.db")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "asked for n_real=3 images but" in err and "has only 0 readable (of 3)" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "m.db").exists()


def _gansweep(cwd: Path, *argv) -> subprocess.CompletedProcess:
    """`python -m sweep ...` as a user runs it: its own process, so stderr holds everything it prints."""
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # Python's usual warnings, as outside pytest
    return subprocess.run([sys.executable, "-m", "sweep", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_folder_of_unreadable_images_is_one_line_exit_2_and_nothing_written(tmp_path):
    bad = tmp_path / "imgs"
    bad.mkdir()
    for name in ("a.png", "b.png"):
        (bad / name).write_bytes(b"junk bytes, not a png")
    done = _gansweep(tmp_path, "run", "demo-grid", "--dataset", f"folder:{bad}", "--storage", str(tmp_path / "r"),
                     "--mlflow-uri", f"sqlite:///{tmp_path}/m.db")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"gansweep: error: asked for n_real=64 images but {bad} has only 0 readable (of 2); skipped 2 unreadable "
        "image file(s): a.png (UnidentifiedImageError), b.png (UnidentifiedImageError)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # no sweep folder, no MLflow store, no cache


def test_files_skipped_from_a_complete_set_are_one_warning_line(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, colour in enumerate([(250, 10, 10), (10, 250, 10)]):
        Image.new("RGB", (40, 40), colour).save(folder / f"{i}.png")
    (folder / "z.png").write_bytes(b"junk bytes, not a png")
    order = torch.randperm(3, generator=torch.Generator().manual_seed(0)).tolist()  # the draw's order, seed 0
    assert order[-1] != 2, "z.png would never be read: the test would not test skipping"
    done = _gansweep(tmp_path, "train", "--dataset", f"folder:{folder}", "--n-real", "2", "--image-size", "32",
                     "--g-width", "8", "--d-width", "8", "--batch-size", "2", "--steps", "1", "--eval-every", "1",
                     "--threads", "1", "--quiet", "--out", str(tmp_path / "out"), "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"gansweep: warning: skipped 1 unreadable image file(s): z.png (UnidentifiedImageError) in " \
                       f"{folder}"
    assert [line.split()[0] for line in lines[1:]] == ["training", "done:"]  # nothing else: no source line


def test_version(capsys):
    from importlib.metadata import version

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"gansweep {version('gansweep')}"


def test_ui_serves_the_store_on_localhost_by_default(capsys, monkeypatch, tmp_path):
    from sweep.cli import run as run_commands

    calls = []
    monkeypatch.setattr(run_commands, "serve_until_stopped", lambda cmd: calls.append(cmd) or 0)
    (tmp_path / "mlflow.db").write_bytes(b"")  # an empty sqlite file is a store
    code, out, _ = run_cli(capsys, "ui", "--mlflow-uri", f"sqlite:///{tmp_path}/mlflow.db")
    assert code == 0
    (cmd,) = calls
    assert cmd[1:4] == ["-m", "mlflow", "ui"]
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path}/mlflow.db"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5000"


def test_missing_inception_weights_fail_before_any_trial(capsys, monkeypatch, tmp_path):
    import urllib.error

    monkeypatch.delenv("GANSWEEP_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    code, _, err = run_cli(capsys, "run", "demo-grid", "--extractor", "inception", "--storage", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "Inception weights not found" in err and "--inception-weights PATH" in err
    assert not (tmp_path / "r").exists()  # nothing started, nothing written


# --- a sweep's record against today's code ----------------------------------------------------------------------------


def recorded_sweep(root: Path, **edit) -> Path:
    """A sweep folder as `gansweep run` leaves it (record, two finished in-process trials), with the recorded config
    of trial 0 changed by `edit`: what the record holds when the study's preset changed since the sweep started."""
    plan = resolve_plan("demo-grid", seeds=1, overrides={"steps": 4}, only=("none", "hflip@64"),
                        options=Options(storage=str(root), name="s", mlflow_uri=f"sqlite:///{root}/m.db"))
    record = plan.record()
    record["configs"][0].update(edit)
    (Path(plan.path)).mkdir(parents=True)
    (Path(plan.path) / RECORD).write_text(json.dumps(record, default=str))
    for i, cfg in enumerate(plan.configs):
        config = flat(cfg)
        trial = Path(plan.path) / trial_dirname(config, inprocess_trial_id(i, config))
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps(config))
        (trial / "result.json").write_text(json.dumps({"step": 4, "fid_effnet": 10.0 + i, "kid_mean_effnet": 0.1 + i,
                                                       "is_mean_effnet": 1.0, "diverged": 0}) + "\n")
    return Path(plan.path)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_resume_refuses_configs_that_changed_since_the_sweep_started(capsys, tmp_path):
    path = recorded_sweep(tmp_path, steps=300)  # the preset said 300 steps then; it resolves to 4 now
    code = json.loads((path / RECORD).read_text())["code"]
    before = tree(tmp_path)
    status, _, err = run_cli(capsys, "resume", str(path))
    assert status == 2 and err.splitlines() == [
        f"gansweep: error: cannot resume {path}: this code resolves trial 0 (none, seed 0) with steps=4, the sweep "
        f"was started with steps=300; resume it with the code that started it ({code}), or start a new sweep"]
    assert tree(tmp_path) == before  # nothing touched, no MLflow store made


def test_resume_goes_ahead_when_the_configs_are_the_same(tmp_path):
    path = recorded_sweep(tmp_path)
    plan = plan_for_resume(str(path))
    assert [flat(c) for c in plan.configs] == json.loads((path / RECORD).read_text())["configs"]


def test_report_of_a_changed_sweep_warns_and_reports_the_trials_as_they_ran(capsys, tmp_path):
    path = recorded_sweep(tmp_path, steps=300)
    status, out, err = run_cli(capsys, "report", str(path), "--no-mlflow")
    assert status == 0 and err.splitlines() == [
        "gansweep: warning: this code resolves trial 0 (none, seed 0) with steps=4, the sweep was started with "
        "steps=300; reporting the trials as they ran"]
    assert (path / "report" / "summary.md").exists() and "hflip@64" in out


def test_configs_changed_names_the_first_difference(tmp_path):
    path = recorded_sweep(tmp_path)
    record = json.loads((path / RECORD).read_text())
    plan = plan_for_resume(str(path))
    assert configs_changed(plan, record) is None
    gone = {**record, "configs": [{k: v for k, v in c.items() if k != "lr"} for c in record["configs"]]}
    assert configs_changed(plan, gone) == ("this code resolves trial 0 (none, seed 0) with lr=0.001, the sweep was "
                                           "started with lr=(no such field)")
    extra = {**record, "configs": [{**record["configs"][0], "old_knob": 1}, record["configs"][1]]}
    assert configs_changed(plan, extra).endswith("with old_knob=(no such field), the sweep was started with old_knob=1")
    assert configs_changed(plan, {**record, "configs": record["configs"][:1]}) == (
        "this code resolves 2 trials, the sweep was started with 1")


def test_a_record_without_configs_resumes_with_a_note(capsys, tmp_path):
    path = recorded_sweep(tmp_path)
    record = json.loads((path / RECORD).read_text())
    del record["configs"]
    (path / RECORD).write_text(json.dumps(record))
    plan_for_resume(str(path))
    assert capsys.readouterr().err.splitlines() == [
        f"gansweep: note: {path} was recorded without its configs (an older gansweep): resuming with the configs "
        "this code resolves"]


def test_in_process_trials_get_a_gpu_where_the_device_selection_finds_one(monkeypatch):
    """Without Ray, a trial's GPU share follows `gan.runtime.select_device` (the one device selection)."""
    from sweep.execution import driver

    cpus = os.cpu_count() or 1
    expected = 1.0 if torch.cuda.is_available() else 0.0
    assert driver.trial_resources(Options(), use_ray=False) == {"cpu": cpus, "gpu": expected}
    monkeypatch.setattr(driver, "select_device", lambda: torch.device("cuda"))
    assert driver.trial_resources(Options(), use_ray=False) == {"cpu": cpus, "gpu": 1.0}
    monkeypatch.setattr(driver, "select_device", lambda: torch.device("cpu"))
    assert driver.trial_resources(Options(), use_ray=False) == {"cpu": cpus, "gpu": 0.0}
    assert driver.trial_resources(Options(gpus_per_trial=0.25, cpus_per_trial=2), use_ray=False) == {"cpu": 2,
                                                                                                      "gpu": 0.25}

"""Kill a sweep's driver mid-run (the whole process group: driver, its local Ray, the trial workers; or the one
process of an `--in-process` sweep), then `gansweep resume PATH`: every trial ends finished, each exactly once in
MLflow, no metric step logged twice. The Tune run resumes into a new MLflow store (`--mlflow-uri NEW`): everything,
what the dead driver logged included, ends up there."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from sweep.records import read_sweep
from tests.sweep_helpers import TINY, gansweep_cmd, grid_steps, metric_steps, subprocess_env, sweep_runs

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", ["ray", "in-process"])
def test_kill_driver_then_resume(tmp_path, mode):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = tmp_path / "results"
    settings = [f"--set={k}={v}" for k, v in {**TINY, "steps": 40}.items() if k != "steps"] + ["--steps", "40"]
    cmd = gansweep_cmd("run", "demo-grid", "--only", "none", "--only", "hflip@64", "--name", "sw", "--storage",
                    str(storage), "--mlflow-uri", uri, "--num-cpus", "2", "--seeds", "1", *settings,
                    *(["--in-process"] if mode == "in-process" else []))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    sweep = storage / "sw"
    deadline, unreadable = time.time() + 240, None
    try:
        # Wait until a trial has reported a few checkpoints, then kill everything the driver started.
        while time.time() < deadline:
            try:
                steps = [r.last["step"] for r in read_sweep(sweep) if r.history]
            except Exception as e:  # noqa: BLE001 -- Tune copies its experiment state while we read: try again
                steps, unreadable = [], e
            if steps and max(steps) >= 6:
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail(f"no trial reported in time (last read error: {unreadable!r})")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver's session: itself, its GCS and raylet (workers follow)
        proc.wait()
    unfinished = [r for r in read_sweep(sweep) if r.last.get("step", 0) < 40]
    assert unfinished, "both trials finished before the kill: the test did not test resume"

    new_uri = f"sqlite:///{tmp_path}/moved.db" if mode == "ray" else None
    done = subprocess.run(gansweep_cmd("resume", str(sweep), *(["--mlflow-uri", new_uri] if new_uri else [])),
                          cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]

    client, parents, children = sweep_runs(new_uri or uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.params["arm"] for r in children) == ["hflip@64", "none"]
    for run in children:
        assert run.data.tags["gansweep.outcome"] == "finished"
        assert metric_steps(client, run.info.run_id, "fid_effnet") == list(range(2, 41, 2))
        assert grid_steps(client, run.info.run_id)[-1] == 40
    assert (sweep / "report" / "summary.md").exists()

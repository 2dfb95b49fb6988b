"""Faults that used to leak: a `--storage` that cannot hold results (refused in one line before Ray starts, dry
runs included), `gansweep ui` on a store that does not exist (refused) or stopped by a signal (its MLflow server and
workers stop too), a SIGKILLed driver's Ray agents (stopped by the resume), and the last line of a sweep whose
MLflow was unreachable (the backfill command, not a UI on the unreachable server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from sweep.cli import main
from sweep.cli.run import _finish
from sweep.execution import orphans
from sweep.execution.driver import SweepResult
from sweep.plan import Options, resolve_plan
from tests.servers import free_port, wait_http


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _bad_storage(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    return [(str(afile), "is a file; give a folder"),
            (str(afile / "sub" / "dir"), f"is inside {afile}, which is a file"),
            ("/proc/gansweep-results", "cannot write in /proc"),  # not writable even as root
            ("ftp://host/x", "unknown scheme 'ftp'; allowed: a local folder or s3://")]


@pytest.mark.parametrize("dry", [True, False])
def test_unusable_storage_is_one_line_exit_2_before_ray(capsys, tmp_path, dry):
    for storage, match in _bad_storage(tmp_path):
        code, out, err = run_cli(capsys, "run", "demo", "--storage", storage, "--mlflow-uri",
                                 f"sqlite:///{tmp_path}/m.db", *(["--dry-run"] if dry else []))
        assert code == 2 and out == "", (storage, out)
        assert len(err.strip().splitlines()) == 1 and err.startswith("gansweep: error: --storage "), err
        assert match in err, err
    assert not (tmp_path / "m.db").exists()


def test_usable_storage_passes(capsys, tmp_path):
    for storage in (tmp_path / "new" / "deep", "s3://bucket/prefix"):  # made later / reached only when written
        code, out, _ = run_cli(capsys, "run", "demo-grid", "--dry-run", "--seeds", "1", "--storage", str(storage))
        assert code == 0 and len(out.splitlines()) == 12
    assert not (tmp_path / "new").exists() and sorted(os.listdir(tmp_path)) == []  # the probe leaves nothing


def test_ui_refuses_a_store_that_does_not_exist(capsys, tmp_path):
    for db, match in [(tmp_path / "no" / "such" / "x.db", f"(no folder {tmp_path}/no/such)"),
                      (tmp_path / "x.db", "(no such file)")]:
        code, out, err = run_cli(capsys, "ui", "--mlflow-uri", f"sqlite:///{db}")
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"gansweep: error: no MLflow store at {db} ") and match in err, err
        assert not db.exists()


def _children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p))
        except (OSError, ValueError):
            continue
    return out


@pytest.mark.slow  # an MLflow server start: 60-120 s on the loaded 2-core machine
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ui_stops_its_server_and_workers_on_a_signal(tmp_path, sig):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).search_experiments()  # makes the store
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sweep", "ui", "--mlflow-uri", uri, "--port", str(port),
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=180, proc=proc)
        (server,) = _children(proc.pid)
        group = orphans.group_members(server)  # the MLflow server's own process group
        assert len(group) >= 3, group  # `mlflow ui`, the app server and its 2 workers
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 128 + sig
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.time() + 5
    while any(orphans.alive(p) for p in group) and time.time() < deadline:
        time.sleep(0.1)
    assert [p for p in group if orphans.alive(p)] == [] and orphans.group_members(server) == []


DRIVER = textwrap.dedent("""
    import sys, time, ray
    from sweep.execution import orphans
    ray.init(num_cpus=1, include_dashboard=False)
    orphans.record_session(sys.argv[1])
    print(ray._private.worker.global_worker.node.get_session_dir_path(), flush=True)
    time.sleep(300)
""")


def test_a_killed_drivers_ray_agents_are_stopped_by_the_resume(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=env, start_new_session=True)
    session = driver.stdout.readline().strip()
    assert session.startswith("/") and (tmp_path / orphans.RAY_SESSION).exists()
    assert orphans.stop_orphans(str(tmp_path)) == []  # its driver lives: nothing is touched
    os.kill(driver.pid, signal.SIGKILL)  # the driver alone, as a job system or the OOM killer does
    driver.wait()
    deadline, left = time.time() + 60, []
    while time.time() < deadline:  # the GCS and raylet follow their driver; the agents stay
        left = orphans.session_processes(session)
        cmds = [open(f"/proc/{p}/cmdline", "rb").read() for p in left if orphans.alive(p)]
        if left and not any(b"gcs_server" in c or b"/raylet" in c for c in cmds):
            break
        time.sleep(0.5)
    try:
        assert left, "nothing of the killed driver's Ray was left: the test would not test the cleanup"
        assert sorted(orphans.stop_orphans(str(tmp_path))) == sorted(left)
        assert orphans.session_processes(session) == []
    finally:
        orphans.stop(orphans.session_processes(session))


def test_an_offline_sweep_ends_with_the_backfill_command(capsys, tmp_path):
    plan = resolve_plan("demo", seeds=1, only=("none",), options=Options(
        storage=str(tmp_path), name="s", mlflow_uri="http://127.0.0.1:9"))
    offline = SweepResult(Counter(finished=1), mlflow_offline="Connection refused")
    assert _finish(plan, offline) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == (f"MLflow: http://127.0.0.1:9 was unreachable, so the trials are not in it yet; when it is up, "
                    f"backfill it: gansweep report {tmp_path}/s")
    assert _finish(plan, SweepResult(Counter(finished=1))) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "browse: gansweep ui --mlflow-uri http://127.0.0.1:9"


def test_mlflow_patience_sets_the_retry_waits(capsys):
    from sweep.mlflow.tracker import BACKOFF, backoff_for

    assert BACKOFF == backoff_for(7.5) == (0.5, 1.0, 2.0, 4.0) and backoff_for(0) == ()
    waits = backoff_for(300)
    assert sum(waits) == pytest.approx(300) and max(waits) == 30.0 and waits[:4] == BACKOFF
    code, _, err = run_cli(capsys, "run", "demo", "--dry-run", "--mlflow-patience", "-1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--mlflow-patience" in err, err
    plan = resolve_plan("demo", seeds=1, options=Options(mlflow_patience=60.0))
    assert plan.record()["options"]["mlflow_patience"] == 60.0  # a resume and a report keep it

"""Processes a dead driver leaves behind, found and stopped (Linux `/proc`; elsewhere nothing is found).

A one-node Ray started by the driver dies with it when the driver is SIGKILLed (its GCS and raylet watch the
driver), except two agents the raylet started, `ray::DashboardAgent` and `ray::RuntimeEnvAgent`: they are
reparented to init and live on. Their command line is a process title without the session, but they keep the
session's log files open, so they are found by their open files under the session folder. The driver records its
session folder in the sweep (`RAY_SESSION`); `gansweep resume` calls `stop_orphans` before it starts its own Ray,
and stops what is left of that session, only once no GCS or raylet of it is alive (a live Ray is never touched).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from gan import storage

RAY_SESSION = "ray_session.json"  # in the sweep folder: the session folder of the one-node Ray its driver started


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return rest[0], int(rest[2])


def _pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, is not)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group."""
    return [p for p in _pids() if (st := _stat(p)) is not None and st[1] == pgid and st[0] not in ("Z", "X")]


def stop(pids, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.time() + grace
        while any(alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


def _uses(pid: int, folder: str) -> bool:
    """Whether the process names `folder` in its command line or holds a file under it open."""
    prefix = folder.rstrip("/") + "/"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if prefix.encode() in f.read():
                return True
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                    return True
            except OSError:
                continue
    except OSError:
        return False
    return False


def session_processes(session_dir: str) -> list[int]:
    """Live processes of the Ray session at `session_dir` (this process excluded)."""
    return [p for p in _pids() if p != os.getpid() and alive(p) and _uses(p, session_dir)]


def record_session(sweep_path: str) -> None:
    """Note in the sweep which Ray session this driver started (call after `ray.init` started a one-node Ray)."""
    import ray

    try:
        session_dir = ray._private.worker.global_worker.node.get_session_dir_path()  # no public accessor in Ray 2.x
    except AttributeError as e:
        print(f"gansweep: warning: Ray's session folder is unknown ({e}); should this driver be killed, its Ray's "
              "agents may outlive it (`ps -ef | grep ray::`)", file=sys.stderr, flush=True)
        return
    storage.write_text(storage.join(sweep_path, RAY_SESSION),
                       json.dumps({"session_dir": session_dir, "host": socket.gethostname(), "driver": os.getpid()}))


def stop_orphans(sweep_path: str) -> list[int]:
    """Stop what is left of the recorded Ray session of the sweep's last driver, when that driver is dead and its
    Ray is gone (no GCS, no raylet): returns the pids stopped (one line on stderr when there were any)."""
    path = storage.join(sweep_path, RAY_SESSION)
    if not storage.exists(path):
        return []
    rec = json.loads(storage.read_text(path))
    if rec.get("host") != socket.gethostname() or alive(int(rec.get("driver", 0))):
        return []  # another machine's, or its driver lives (another command of the same sweep is running)
    pids = session_processes(rec["session_dir"])
    if not pids:
        return []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"gcs_server" in cmd or b"/raylet" in cmd:
            return []  # that Ray still runs: not orphans
    stop(pids)
    print(f"gansweep: stopped {len(pids)} leftover process(es) of the dead driver's Ray ({rec['session_dir']})",
          file=sys.stderr, flush=True)
    return pids

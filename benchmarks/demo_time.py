"""The demo's wall time as a new user meets it: `gansweep run demo` in a fresh folder with an empty cache.

    python benchmarks/demo_time.py [--keep DIR] [-- extra gansweep run arguments]

Runs the command line in its own process (input preparation, leakage probes, Ray start, 18 trials, report), then
prints the wall time, the machine's load before and after (`os.getloadavg`: other work on the machine slows the
demo), and where the sweep and its report are. Exit status: the command's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="run in this folder (kept) instead of a temporary one")
    parser.add_argument("extra", nargs="*", help="further `gansweep run demo` arguments")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="gansweep-demo-time-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GANSWEEP_CACHE": str(folder / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sweep", "run", "demo", *args.extra], cwd=folder, env=env)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    minutes, seconds = divmod(wall, 60)
    print(f"gansweep run demo: {int(minutes)} min {seconds:04.1f} s wall (exit {done.returncode}) on "
          f"{os.cpu_count()} CPUs; load average before {load_before[0]:.1f}, after {load_after[0]:.1f} "
          f"(1 min), {load_after[2]:.1f} (15 min)")
    print(f"sweep folder: {folder}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())

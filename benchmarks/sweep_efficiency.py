"""Sweep efficiency: the same K short trials through Ray Tune on this machine's CPUs vs one after another in one
process (`--in-process`, each trial using every core), in the same script.

    python benchmarks/sweep_efficiency.py [--trials 4] [--steps 60] [--cpus 2]

Prints a Markdown table, the speed-up of Tune over the sequential run, and Tune's overhead per trial: the part of
Tune's wall time that was not spent inside the trainables (worker start, imports, extractor load, scheduling,
checkpoint and result handling), spread over the trials.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARMS = ["none", "contrast@100", "negpos@100", "hflip@100", "vflip@100", "contrast+hflip@100",
        "contrast+hflip@200", "hflip+generated@100"]


def run(mode: str, trials: int, steps: int, cpus: int, root: Path) -> dict:
    import ray

    from sweep.driver import SweepOptions, resolve_sweep, run_sweep

    settings = dict(steps=steps, eval_every=max(1, steps // 2), eval_samples=32, is_splits=4, batch_size=32,
                    g_width=16, d_width=16)
    in_process = mode == "in-process"
    opts = SweepOptions(storage=str(root / mode), name="bench", mlflow_uri=f"sqlite:///{root}/{mode}.db",
                        in_process=in_process, cpus_per_trial=cpus if in_process else 1, num_cpus=cpus,
                        verbose=0)
    sweep = resolve_sweep("demo", overrides=settings, only=ARMS[:trials], opts=opts)
    if not in_process:
        ray.init(num_cpus=cpus, include_dashboard=False)  # started outside the timing, as a cluster would be
    t0 = time.perf_counter()
    run_sweep(sweep, opts, report=False)
    wall = time.perf_counter() - t0
    if not in_process:
        ray.shutdown()
    inside = 0.0
    for p in Path(sweep.path).glob("*/result.json"):
        rows = [json.loads(line) for line in p.read_text().splitlines()]
        inside += rows[-1].get("time_total_s", 0.0)
    return {"mode": mode, "wall": wall, "inside": inside, "trials": trials}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        seq = run("in-process", a.trials, a.steps, a.cpus, root)
        tune = run("tune", a.trials, a.steps, a.cpus, root)
    print(f"\n{a.trials} trials x {a.steps} steps (32x32 DCGAN, widths 16, 2 evaluations of 32 samples each, "
          f"effnet), {a.cpus} CPUs\n")
    print("| run | wall s | s per trial |")
    print("|---|---:|---:|")
    print(f"| one after another in one process ({a.cpus} threads each) | {seq['wall']:.1f} | {seq['wall'] / a.trials:.1f} |")
    print(f"| Ray Tune, {a.cpus} concurrent trials x 1 CPU | {tune['wall']:.1f} | {tune['wall'] / a.trials:.1f} |")
    overhead = (tune["wall"] * min(a.cpus, a.trials) - tune["inside"]) / a.trials
    print(f"\nspeed-up of Tune over sequential: {seq['wall'] / tune['wall']:.2f}x")
    print(f"Tune overhead per trial (worker slot time outside the trainable): {overhead:.1f} s "
          f"(trainables ran {tune['inside'] / a.trials:.1f} s each)")


if __name__ == "__main__":
    main()

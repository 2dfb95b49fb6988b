"""Sweep efficiency: the same K short trials through Ray Tune on this machine's CPUs vs one after another in one
process (`--in-process`, each trial using every core), in the same script.

    python benchmarks/sweep_efficiency.py [--trials 4] [--steps 60,300] [--cpus 2]

Prints a Markdown table, the speed-up of Tune over the sequential run, and Tune's overhead per trial: the part of
Tune's wall time that was not spent inside the trainables (worker start, imports, extractor load, scheduling,
checkpoint and result handling), spread over the trials. Each step count is one comparison: short trials show the
fixed cost of a Tune trial, longer ones how much of it is left.
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

    from sweep.driver import run_sweep
    from sweep.plan import Options, resolve_plan

    settings = dict(steps=steps, eval_every=max(1, steps // 2), eval_samples=32, is_splits=4, batch_size=32,
                    g_width=32, d_width=32)
    in_process = mode == "in-process"
    opts = Options(storage=str(root / mode), name=f"bench{steps}", mlflow_uri=f"sqlite:///{root}/{mode}.db",
                   in_process=in_process, cpus_per_trial=cpus if in_process else 1, num_cpus=cpus, verbose=0)
    sweep = resolve_plan("demo", overrides=settings, only=tuple(ARMS[:trials]), options=opts)
    if not in_process:
        ray.init(num_cpus=cpus, include_dashboard=False)  # started outside the timing, as a cluster would be
    t0 = time.perf_counter()
    run_sweep(sweep, report=False)
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
    ap.add_argument("--steps", default="60,300", help="comma-separated step counts, one comparison each")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for steps in [int(x) for x in a.steps.split(",")]:
            seq = run("in-process", a.trials, steps, a.cpus, Path(d))
            tune = run("tune", a.trials, steps, a.cpus, Path(d))
            rows.append((steps, seq, tune))
    print(f"\n{a.trials} trials each (32x32 DCGAN, widths 32, batch 32, 2 evaluations of 32 samples, effnet), "
          f"{a.cpus} CPUs\n")
    print("| steps/trial | sequential in one process, wall s | Ray Tune, wall s | speed-up | Tune overhead per trial, s |")
    print("|---:|---:|---:|---:|---:|")
    for steps, seq, tune in rows:
        overhead = (tune["wall"] * min(a.cpus, a.trials) - tune["inside"]) / a.trials
        print(f"| {steps} | {seq['wall']:.1f} | {tune['wall']:.1f} | {seq['wall'] / tune['wall']:.2f}x | {overhead:.1f} |")
    print("\nsequential: one trial after another, each using all cores as torch threads; Tune: one trial per core.\n"
          "overhead: worker-slot seconds not spent inside the trainable (process start, imports, extractor load, "
          "result and checkpoint handling), per trial.")


if __name__ == "__main__":
    main()

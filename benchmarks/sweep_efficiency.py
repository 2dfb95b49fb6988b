"""Sweep efficiency: the same demo trials through Ray Tune on this machine's CPUs vs one after another in one process
(`--in-process`, each trial using every core as torch threads), in the same script.

    python benchmarks/sweep_efficiency.py [--trials 24] [--steps 200] [--cpus 2]

The trials are `gansweep run demo`'s (64 faces, width-16 DCGANs, one effnet evaluation of 36 samples against the 36
held-out faces), without the `generated` arms (no donor to train). Printed, for each mode: the whole sweep's wall time
(input preparation included), the trial phase (first trial start to last trial end), and for Tune its overhead per
trial: the worker-slot seconds of the trial phase not spent inside a trainable (scheduling, actor reuse, result and
checkpoint handling, MLflow logging), spread over the trials. The speed-up is sequential / Tune.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARMS = ("none", "contrast@64", "negpos@64", "hflip@64", "vflip@64", "contrast+hflip@64", "contrast+hflip@128")


def run(mode: str, trials: int, steps: int, cpus: int, root: Path) -> dict:
    import ray

    from sweep.execution.driver import run_sweep
    from sweep.plan import Options, resolve_plan
    from sweep.records import read_sweep

    in_process = mode == "in-process"
    opts = Options(storage=str(root / mode), name=f"bench{steps}", mlflow_uri=f"sqlite:///{root}/{mode}.db",
                   in_process=in_process, cpus_per_trial=cpus if in_process else 1, num_cpus=cpus, verbose=0)
    seeds = -(-trials // len(ARMS))
    plan = resolve_plan("demo-grid", seeds=seeds, overrides=dict(steps=steps, eval_every=steps, donor_steps=steps),
                        only=ARMS, options=opts)
    plan = dataclasses.replace(plan, study=dataclasses.replace(plan.study, configs=plan.study.configs[:trials]),
                               configs=plan.configs[:trials])
    if not in_process:
        ray.init(num_cpus=cpus, include_dashboard=False)  # started outside the timing, as a cluster would be
    t0 = time.perf_counter()
    result = run_sweep(plan, report=False)
    wall = time.perf_counter() - t0
    if not in_process:
        ray.shutdown()
    assert result.ok and sum(result.outcomes.values()) == trials, result.outcomes
    starts, ends, inside = [], [], 0.0
    for record in read_sweep(plan.path):
        first, last = record.timeline[0], record.timeline[-1]
        inside += last.time_total_s  # seconds inside the trainable, its start-up included
        starts.append(first.timestamp - first.time_total_s)
        ends.append(last.timestamp)
    return {"wall": wall, "phase": max(ends) - min(starts), "inside": inside}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        seq = run("in-process", a.trials, a.steps, a.cpus, Path(d))
        tune = run("tune", a.trials, a.steps, a.cpus, Path(d))
    slots = min(a.cpus, a.trials)
    overhead = (tune["phase"] * slots - tune["inside"]) / a.trials
    print(f"\n{a.trials} demo trials ({a.steps} steps, one evaluation each), {a.cpus} CPUs\n")
    print("| mode | sweep wall s | trial phase s | per trial s |")
    print("|:--|--:|--:|--:|")
    print(f"| sequential, one process, {a.cpus} threads per trial | {seq['wall']:.1f} | {seq['phase']:.1f} | "
          f"{seq['phase'] / a.trials:.2f} |")
    print(f"| Ray Tune, 1 CPU per trial, {slots} at a time | {tune['wall']:.1f} | {tune['phase']:.1f} | "
          f"{tune['phase'] / a.trials:.2f} |")
    print(f"\nspeed-up of Tune over sequential: {seq['wall'] / tune['wall']:.2f}x whole sweep, "
          f"{seq['phase'] / tune['phase']:.2f}x trial phase")
    print(f"Tune overhead per trial: {overhead:.2f} s (worker-slot seconds of the trial phase outside the "
          f"trainables, per trial)")


if __name__ == "__main__":
    main()

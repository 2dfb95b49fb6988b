"""Training cost of study 2's methods: seconds per 100 iterations of each, at its resolutions, against dcgan64.

Every method of `gan.methods.METHODS` is built from one config (same widths, batch, precision) and trained through
the library (`train_steps`, and `train_srcnn` for method B's SRCNN phase) on the embedded `skimage-photos` tiles,
prepared once per method with `prepare_data` exactly as a trial does. One iteration is what the study counts: one
update of every adversarial network (stackgan128: stage I and stage II); the SRCNN's iterations are timed apart.

    python benchmarks/highres_cost.py [--steps 10] [--rounds 3] [--warmup 2] [--batch-size 64] [--width 64]
                                      [--srcnn-patch 32] [--precision fp32] [--device auto] [--threads N]

Warm-up iterations are excluded; the methods take turns in every round, so a burst of load from other processes
hits them alike, and each method's best round counts. Timings are training seconds as the library counts them
(`StepStats.seconds`), so they are what an equal-time budget spends. On a shared machine, compare the ratios of one
run, not numbers across runs. The last lines put the study's iteration budget (6000 iterations for both; B adds
2000 SRCNN iterations) in these units, next to the study's own ratio (113.8 h for A, 75.2 h for B).
"""

from __future__ import annotations

import argparse

import torch

from gan.config import TrialConfig
from gan.methods import METHODS, prepare_data
from gan.realsets import load_real
from gan.runtime import select_device, set_threads
from gan.checkpoint import build_state
from gan.train import train_srcnn, train_steps

STUDY_STEPS, STUDY_SRCNN_STEPS = 6000, 2000  # the study's equal-iteration budget (its table 1)
STUDY_HOURS = {"stackgan128": 113.8, "dcgan64+srcnn": 75.2}  # what those budgets took in the study
SR = "srcnn"  # the row of method B's SRCNN phase


def runners(args, device) -> dict:
    """name -> run(n): seconds of n training iterations, for every method and for method B's SRCNN phase."""
    real = load_real("skimage-photos", args.n_real, 128, seed=0).images
    out = {}
    for name in METHODS:
        cfg = TrialConfig(dataset="skimage-photos", n_real=args.n_real, method=name, image_size=128,
                          g_width=args.width, d_width=args.width, nz=args.nz, batch_size=args.batch_size,
                          precision=args.precision, srcnn_patch=args.srcnn_patch, steps=10**9, srcnn_steps=10**9)
        state, data = build_state(cfg, device), prepare_data(real, cfg, device)
        out[name] = lambda n, state=state, data=data: train_steps(state, data, n).seconds
        if METHODS[name].srcnn:
            out[SR] = lambda n, state=state, data=data: train_srcnn(state, data, n).seconds
    return out


def measure(run: dict, steps: int, warmup: int, rounds: int) -> dict:
    """Best-of-`rounds` seconds per iteration of every runner, the runners taking turns in each round."""
    for fn in run.values():
        fn(warmup)  # oneDNN/cuDNN primitive creation, Adam state
    best = dict.fromkeys(run, float("inf"))
    for _ in range(rounds):
        for name, fn in run.items():
            best[name] = min(best[name], fn(steps) / steps)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed iterations per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per runner before measuring")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per runner; the best is reported")
    p.add_argument("--batch-size", type=int, default=64, help="images per GAN iteration and crops per SRCNN one")
    p.add_argument("--width", type=int, default=64, help="g_width = d_width (even, for stackgan128)")
    p.add_argument("--nz", type=int, default=100)
    p.add_argument("--srcnn-patch", type=int, default=32, help="side of the SRCNN's training crops")
    p.add_argument("--n-real", type=int, default=200, help="skimage-photos tiles to train on")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    device = select_device(args.device)
    set_threads(args.threads)
    per_it = measure(runners(args, device), args.steps, args.warmup, args.rounds)
    base = per_it["dcgan64"]

    print(f"\nwidth {args.width}, batch {args.batch_size}, nz {args.nz}, SRCNN crops {args.srcnn_patch}px, "
          f"{args.precision}, {device}, {torch.get_num_threads()} threads; best of {args.rounds} x {args.steps} "
          f"timed iterations after {args.warmup} warm-up\n")
    print("| method | trains at (px) | output (px) | s / 100 iterations | x dcgan64 |")
    print("|:---|:---|---:|---:|---:|")
    for name, m in METHODS.items():
        label = f"{name} GAN iterations" if m.srcnn else name
        print(f"| {label} | {'+'.join(map(str, m.train_sizes))} | {m.output_size} | "
              f"{100 * per_it[name]:.2f} | {per_it[name] / base:.2f}x |")
    print(f"| dcgan64+srcnn SRCNN iterations | 64->128 | 128 | {100 * per_it[SR]:.2f} | {per_it[SR] / base:.2f}x |")

    a = STUDY_STEPS * per_it["stackgan128"]
    b = STUDY_STEPS * per_it["dcgan64+srcnn"] + STUDY_SRCNN_STEPS * per_it[SR]
    print(f"\nThe study's budget in these units: A (stackgan128, {STUDY_STEPS} it) {a:.0f} s; B (dcgan64+srcnn, "
          f"{STUDY_STEPS} + {STUDY_SRCNN_STEPS} SRCNN it) {b:.0f} s; A/B = {a / b:.2f} "
          f"(the study: {STUDY_HOURS['stackgan128']} h / {STUDY_HOURS['dcgan64+srcnn']} h = "
          f"{STUDY_HOURS['stackgan128'] / STUDY_HOURS['dcgan64+srcnn']:.2f}).")


if __name__ == "__main__":
    main()

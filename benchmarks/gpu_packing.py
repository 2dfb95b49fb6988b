"""GPU packing: trials per hour of the paper preset's trial on one GPU, with 1, 2, 4 and 8 trials sharing it.

Each trial is a Ray actor holding 1/K of the GPU (`--gpus-per-trial 1/K`, as a sweep would ask), running a scaled-down
copy of a `paper-celeba` trial: `--chunk` training steps of the preset's DCGAN (64x64, width 64, batch 64) and one
evaluation of `--chunk / 1000 * 5000` samples (the preset scores 5000 Inception-sized samples every 1000 steps; here
the extractor is EfficientNet-Lite0 unless `--extractor inception` with weights). The K actors are built and
warmed first; then K chunks start together and the wall time of the slowest is the cost of K chunks. A full trial is 20000 / chunk chunks, so

    trials per hour = K * 3600 / (wall * 20000 / chunk)

printed per K for fp32 and bf16, with the ratio to one trial per GPU. On a machine without a GPU it runs as a dry
check (`--dry-run` shrinks everything; a logical GPU, torch on the CPU): the numbers then say nothing about GPUs.

    python benchmarks/gpu_packing.py [--packing 1,2,4,8] [--chunk 200] [--precision fp32,bf16] [--dry-run]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAPER_STEPS = 20_000  # the preset's steps per trial
SAMPLES_PER_1000_STEPS = 5000  # the preset's evaluation: 5000 samples every 1000 steps


class Trial:
    """One trial's worker (a Ray actor holding 1/K of the GPU): networks, data and extractor built once, then timed
    chunks of training and scoring, as a trial on a shared GPU runs them."""

    def __init__(self, settings: dict, device: str):
        import torch

        from gan import metrics
        from gan.checkpoint import build_state
        from gan.config import TrialConfig

        if device == "cpu":
            torch.set_num_threads(1)  # the dry run: K actors on a few cores
        self.cfg, self.dev = TrialConfig(**settings), torch.device(device)
        self.state = build_state(self.cfg, self.dev)
        size = self.cfg.image_size
        self.data = torch.randint(0, 256, (1000, 3, size, size), dtype=torch.uint8,
                                  generator=torch.Generator().manual_seed(0)).to(self.dev)
        self.extractor = metrics.get_extractor(self.cfg.extractor, self.dev,
                                               inception_weights=self.cfg.inception_weights or None)

    def chunk(self, steps: int, eval_samples: int) -> float:
        """`steps` training steps, then scoring `eval_samples` samples; returns its own seconds."""
        import time

        import torch

        from gan import train

        t0 = time.perf_counter()
        train.train_steps(self.state, self.data, steps)
        fake = train.sample(self.state, train.eval_noise(self.cfg, eval_samples, self.dev))
        self.extractor.features(fake)
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packing", default="1,2,4,8", help="trials sharing one GPU, comma-separated")
    ap.add_argument("--chunk", type=int, default=200, help="training steps per timed chunk")
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--extractor", default="effnet", choices=["effnet", "inception"])
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script, measures nothing")
    a = ap.parse_args()

    import ray
    import torch

    from search_spaces.da import GPU_SETTINGS

    gpu = torch.cuda.is_available() and not a.dry_run
    settings = {**GPU_SETTINGS, "dataset": "lfw-subset", "n_real": 100, "n_heldout": 0, "extractor": a.extractor}
    steps, samples = a.chunk, a.chunk * SAMPLES_PER_1000_STEPS // 1000
    if a.dry_run:
        settings.update(image_size=32, g_width=8, d_width=8, batch_size=8)
        steps, samples = 4, 8
    device = "cuda" if gpu else "cpu"
    name = torch.cuda.get_device_name(0) if gpu else "no GPU (dry run on the CPU)"
    ray.init(num_gpus=1, num_cpus=max(8, max(int(k) for k in a.packing.split(","))), include_dashboard=False,
             log_to_driver=False)
    rows = []
    try:
        for precision in a.precision.split(","):
            for k in (int(x) for x in a.packing.split(",")):
                actor = ray.remote(num_gpus=1 / k, num_cpus=1)(Trial)
                trials = [actor.remote({**settings, "precision": precision}, device) for _ in range(k)]
                ray.get([t.chunk.remote(1, 8) for t in trials])  # built and warm (cuDNN autotuning, allocator)
                t0 = time.perf_counter()  # all K chunks start together; the slowest decides
                ray.get([t.chunk.remote(steps, samples) for t in trials])
                wall = time.perf_counter() - t0
                rows.append((precision, k, wall, k * 3600 / (wall * PAPER_STEPS / steps)))
                for t in trials:
                    ray.kill(t)
    finally:
        ray.shutdown()
    print(f"\npaper-celeba trial on {name}: {steps} steps + {samples} samples scored per chunk, "
          f"{PAPER_STEPS // steps} chunks per trial\n")
    print("| precision | trials per GPU | wall s per chunk | trials per hour | x one trial per GPU |")
    print("|:--|--:|--:|--:|--:|")
    for precision, k, wall, per_hour in rows:
        base = next(r[3] for r in rows if r[0] == precision and r[1] == 1) if any(
            r[0] == precision and r[1] == 1 for r in rows) else per_hour
        print(f"| {precision} | {k} | {wall:.2f} | {per_hour:.2f} | {per_hour / base:.2f}x |")


if __name__ == "__main__":
    main()

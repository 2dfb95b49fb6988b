"""Feature-extraction throughput of the metric extractors, the time to score 1000 generated samples, and the fast FID
against torch-fidelity's.

    python benchmarks/metric_throughput.py [--n 64] [--batch-size 64] [--size 64] [--repeats 1] [--threads N]
                                           [--device cpu] [--only all|extractors|fid]

Measures images/s of one pass (logits + pooled features) for:

- EfficientNet-Lite0 (``effnet``, the real ImageNet weights), float32, NCHW vs channels_last;
- Inception-v3 (``inception``, torch-fidelity's ``inception-v3-compat`` with RANDOM weights: the real ones cannot be
  downloaded offline; speed does not depend on the values), gansweep's path NCHW vs channels_last, and
  torch-fidelity's own path (``create_feature_extractor`` + ``get_featuresdict_from_dataset``, with
  ``save_cpu_ram=True`` so its DataLoader uses no worker processes) in the same process.

"Score 1000" = 1000 / throughput (extrapolated, not measured) + the measured metric maths for 1000 generated vs
1000 real feature vectors (IS, FID, KID with 100 subsets of 500, precision/recall), with the real-set statistics
already cached. On a shared machine the numbers are noisy: use --repeats 3 (best pass counts) or run it twice.

FID table: seconds per FID of n_fake generated vs n_real real feature vectors at the two extractors' widths, in one
process: torch-fidelity's path (``fid_features_to_statistics`` of the generated features, then
``fid_statistics_to_metric``: a general eigen-decomposition of sigma_fake @ sigma_real) against gansweep's
(`FrechetReference.distance` on the generated features, the real side factored once beforehand, shown as "setup"),
the ratio of the two, and their relative difference. The features are random non-negative correlated vectors; the
timings do not depend on the values.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from gan import metrics
from gan.metrics import extractors


def throughput(fn, images, batch_size, repeats=1):
    """images/s of fn over batches of ``images``: the best of ``repeats`` passes, after one warm-up batch.

    The warm-up has the measured batch shape (the first call at a new shape builds oneDNN primitives and can take
    twice as long); the best pass is the least disturbed by other processes on a shared machine.
    """
    best = float("inf")
    with torch.inference_mode():
        fn(images[:batch_size])
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in images.split(batch_size):
                fn(batch)
            best = min(best, time.perf_counter() - start)
    return len(images) / best


def metric_seconds(extractor_name: str, n: int = 1000, seed: int = 0, device=None) -> float:
    """Seconds of the metric maths (no network) for n generated vs n real samples of that extractor's sizes."""
    dim, classes = {"effnet": (1280, 1000), "inception": (2048, 1008)}[extractor_name]
    g = torch.Generator().manual_seed(seed)
    fake = {"logits": torch.randn(n, classes, generator=g), "pool": torch.rand(n, dim, generator=g)}
    real_pool = torch.rand(n, dim, generator=g)
    stats = metrics.fid_statistics(real_pool)
    ref = metrics.RealStats(extractor_name, "bench", "bench", real_pool, torch.zeros(n, classes), stats["mu"],
                            stats["sigma"])  # factors the FID real side once, as reference_stats does
    start = time.perf_counter()
    metrics.metrics_from_features(fake, extractor_name, ref, splits=10, seed=seed, device=device)
    return time.perf_counter() - start


def fid_features(n: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """Non-negative correlated features (like pooled activations): uniform noise through a fixed |Gaussian| mixing."""
    mixing = torch.randn(dim, dim, generator=torch.Generator().manual_seed(1234)).abs() / dim ** 0.5
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, dim, generator=g) * 2 + shift) @ mixing


def timed(fn) -> tuple[float, object]:
    """(seconds of one call, fn's result)."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def fid_table(device: torch.device, repeats: int) -> None:
    """Print the FID table: torch-fidelity's path vs `FrechetReference.distance`, measured here, same features."""
    cases = [(1280, 1000, 500), (1280, 1000, 1000), (2048, 1000, 500), (2048, 1000, 1000), (2048, 5000, 5000),
             (2048, 200, 500)]
    print("\n| D (extractor) | n_real | n_fake | rank kept | torch-fidelity s/FID | fast s/FID | ratio | "
          "rel. difference | fast setup s (once per real set) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for dim, n_real, n_fake in cases:
        real, fake = fid_features(n_real, dim, seed=1), fid_features(n_fake, dim, seed=2, shift=0.2)
        stats_real = metrics.fid_statistics(real)
        setup, ref = timed(lambda: metrics.FrechetReference.from_statistics(stats_real["mu"], stats_real["sigma"]))
        ref.distance(fake, device)  # warm-up (on a GPU: CUDA context, cuSOLVER handles)
        slow_s = fast_s = float("inf")
        for _ in range(repeats):  # interleaved, so load from other processes hits both paths alike
            t, slow = timed(lambda: metrics.frechet_distance(metrics.fid_statistics(fake), stats_real))
            slow_s = min(slow_s, t)
            t, fast = timed(lambda: ref.distance(fake, device))  # returns a float: synchronises the device
            fast_s = min(fast_s, t)
        name = {1280: "1280 (effnet)", 2048: "2048 (inception)"}[dim]
        print(f"| {name} | {n_real} | {n_fake} | {ref.root.shape[1]} | {slow_s:.3f} | {fast_s:.4f} | "
              f"{slow_s / fast_s:.1f}x | {abs(fast - slow) / abs(slow):.1e} | {setup:.2f} |", flush=True)
    print(f"\nfast FID on {device}; torch-fidelity on the CPU (numpy); best of {repeats}.")


def torch_fidelity_path(weights_path: Path, images: torch.Tensor, batch_size: int, repeats: int = 1) -> float:
    """images/s of torch-fidelity's own extraction loop over an in-memory uint8 dataset (best of ``repeats``)."""
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    class Images(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    fe = create_feature_extractor("inception-v3-compat", ["logits_unbiased", "2048"], cuda=False,
                                  feature_extractor_weights_path=str(weights_path), verbose=False)
    kwargs = dict(feat_extractor=fe, batch_size=batch_size, cuda=False, save_cpu_ram=True, verbose=False)
    get_featuresdict_from_dataset(Images(images[:batch_size]), **kwargs)  # warm-up at the measured shape
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        get_featuresdict_from_dataset(Images(images), **kwargs)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="images per measurement")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=64, help="side of the (random) input images; extractors resize")
    ap.add_argument("--repeats", type=int, default=1, help="timed passes per measurement; the best one counts")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", choices=("all", "extractors", "fid"), default="all",
                    help="run only the extractor throughput or only the FID table")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}", flush=True)
    if args.only in ("all", "fid"):
        fid_table(device, max(args.repeats, 1))
    if args.only == "fid":
        return
    images = torch.randint(0, 256, (args.n, 3, args.size, args.size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    rows = []

    def measure(label, ext_name, fn):
        ips = throughput(fn, images, args.batch_size, args.repeats)
        rows.append((label, ips, ext_name))
        print(f"  {label}: {ips:.1f} images/s", flush=True)

    def ours(ext):
        return lambda x: ext.forward(x.to(device))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, batch {args.batch_size}, "
          f"{args.n} images of {args.size}x{args.size}", flush=True)
    for cl in (False, True):
        measure(f"effnet fp32 {'channels_last' if cl else 'NCHW'}", "effnet",
                ours(extractors._make_effnet(device, channels_last=cl)))

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "random-inception.pth"
        torch.save(metrics.inception_random_state_dict(), weights)
        for cl in (False, True):
            measure(f"inception (random weights) fp32 {'channels_last' if cl else 'NCHW'}", "inception",
                    ours(extractors._make_inception(device, inception_weights=weights, channels_last=cl)))
        if device.type == "cpu":
            ips = torch_fidelity_path(weights, images, args.batch_size, args.repeats)
            rows.append(("inception, torch-fidelity's own loop", ips, "inception"))
            print(f"  torch-fidelity: {ips:.1f} images/s", flush=True)

    maths = {name: metric_seconds(name, device=device) for name in ("effnet", "inception")}
    print("\n| extractor / path | images/s | score 1000 samples (s) |")
    print("|---|---:|---:|")
    for label, ips, name in rows:
        print(f"| {label} | {ips:.1f} | {1000 / ips + maths[name]:.0f} "
              f"(= {1000 / ips:.0f} features + {maths[name]:.1f} metrics) |")
    print("\nfeatures: extrapolated from the measured throughput; metrics (IS+FID+KID+PR, 1000 vs 1000): measured.")


if __name__ == "__main__":
    main()

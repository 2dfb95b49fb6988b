"""Training throughput: gansweep's device-resident uint8 batches vs the classic ImageFolder + DataLoader pipeline.

Both feed the same DCGAN and the same step (`gan.steps.gan_step`: one D and one G update) in the same process, at
32 and 64 pixels, in float32 and with bf16 autocast. The classic pipeline decodes PNGs, resizes, crops and
normalises every image on every step (torchvision ImageFolder + Resize/CenterCrop/ToTensor/Normalize, a shuffling
DataLoader with 0 and 2 workers); ours draws an index batch from a uint8 tensor already on the device.

    python benchmarks/train_throughput.py [--steps 5] [--rounds 3] [--warmup 1] [--batch-size 64] [--device auto]

The image folder is written to a temporary directory from scikit-image's bundled `lfw_subset` (200 images, 100 of
them faces, 25x25 grey), upscaled to 125x125 RGB PNGs so decoding and resizing cost roughly what a small real photo
does. Warm-up steps are excluded; each pipeline is timed in several interleaved rounds and the best round counts.
On a shared machine the numbers are still noisy: compare ratios from one run, not across runs.

Where the time goes: our data path (index draw + gather + uint8->float) costs ~0.15 ms of a ~60 ms step (32px bf16),
so "ours" is the model step alone. The classic pipeline's cost is decoding and resizing; with 2 workers it overlaps
that with the step, but on a 2-core machine the workers compete with the step's 2 compute threads.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch

from gan.config import TrialConfig
from gan.runtime import select_device, set_threads
from gan.checkpoint import build_state
from gan.steps import gan_step
from gan.train import train_steps

SOURCE_SIZE = 125  # side of the PNGs on disk
SETTLE_S = 0.5  # pause after each timed run


def write_image_folder(root: Path) -> Path:
    """200 LFW faces as RGB PNGs in root/faces/ (ImageFolder wants one sub-folder per class)."""
    from PIL import Image
    from skimage.data import lfw_subset

    faces = root / "faces"
    faces.mkdir(parents=True)
    for i, img in enumerate(lfw_subset()):  # (25, 25) floats in [0, 1]
        im = Image.fromarray((img * 255).round().astype("uint8")).convert("RGB")
        im.resize((SOURCE_SIZE, SOURCE_SIZE), Image.BICUBIC).save(faces / f"{i:04d}.png")
    return root


def classic_transform(size: int):
    import torchvision.transforms as T

    return T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])


def load_uint8(root: Path, size: int) -> torch.Tensor:
    """The same images, resized once, as the uint8 (N,3,H,W) tensor our trainer keeps on the device."""
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(root), transform=classic_transform(size))
    x = torch.stack([ds[i][0] for i in range(len(ds))])  # float in [-1, 1]
    return x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def ours_runner(cfg: TrialConfig, data: torch.Tensor, device):
    """`run(n)` -> seconds for n steps of `train_steps` (index batches from device-resident uint8)."""
    state = build_state(cfg, device)
    data = data.to(device)
    return lambda n: train_steps(state, data, n).seconds


def classic_runner(cfg: TrialConfig, root: Path, device, workers: int):
    """`run(n)` -> seconds for n of the same steps fed by ImageFolder + transforms + a shuffling DataLoader."""
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    state = build_state(cfg, device)
    ds = ImageFolder(str(root), transform=classic_transform(cfg.image_size))
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=device.type == "cuda")
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # endless epochs

    def run(n: int) -> float:
        t0 = time.perf_counter()
        total = torch.zeros(4, device=device)
        for _, (x, _y) in zip(range(n), batches):
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            total += gan_step(state, x)
        total.tolist()  # one sync, as in train_steps
        return time.perf_counter() - t0

    return run


def measure(runners: dict, steps: int, warmup: int, rounds: int, batch_size: int) -> dict:
    """Best-of-`rounds` images/s per runner; the runners take turns each round, so a burst of load from
    other processes hits them alike instead of one of them."""
    for run in runners.values():
        run(warmup)  # oneDNN primitive creation, Adam state, DataLoader workers starting
    best = dict.fromkeys(runners, 0.0)
    for _ in range(rounds):
        for name, run in runners.items():
            best[name] = max(best[name], steps * batch_size / run(steps))
            time.sleep(SETTLE_S)  # let DataLoader workers finish prefetching outside the next runner's clock
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per pipeline before measuring")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per pipeline; the best is reported")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=64, help="g_width = d_width")
    p.add_argument("--sizes", default="32,64")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    device = select_device(args.device)
    set_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_image_folder(Path(tmp))
        for size in map(int, args.sizes.split(",")):
            data = load_uint8(root, size)
            for precision in ("fp32", "bf16"):
                cfg = TrialConfig(image_size=size, g_width=args.width, d_width=args.width,
                                  batch_size=args.batch_size, precision=precision)
                runners = {"ours": ours_runner(cfg, data, device),
                           "nw0": classic_runner(cfg, root, device, workers=0),
                           "nw2": classic_runner(cfg, root, device, workers=2)}
                r = measure(runners, args.steps, args.warmup, args.rounds, args.batch_size)
                del runners  # stops the DataLoader workers before the next configuration
                ours, c0, c2 = r["ours"], r["nw0"], r["nw2"]
                rows.append((size, precision, ours, c0, c2))
                print(f"  {size}px {precision}: ours {ours:.1f}, classic/0 {c0:.1f}, classic/2 {c2:.1f} img/s",
                      flush=True)

    print(f"\nDCGAN step (1 D + 1 G update), width {args.width}, batch {args.batch_size}, {device}, "
          f"{torch.get_num_threads()} threads, best of {args.rounds} x {args.steps} timed steps "
          f"after {args.warmup} warm-up\n")
    print("| size | precision | ours img/s | classic nw=0 img/s | classic nw=2 img/s | ours/nw0 | ours/nw2 |")
    print("|---:|:---|---:|---:|---:|---:|---:|")
    for size, precision, ours, c0, c2 in rows:
        print(f"| {size} | {precision} | {ours:.1f} | {c0:.1f} | {c2:.1f} | {ours / c0:.2f}x | {ours / c2:.2f}x |")


if __name__ == "__main__":
    main()

"""`gansweep score`: IS (and FID/KID/precision/recall against a reference set) of a folder or image table.

IMAGES and --reference are either a folder of images (read recursively, sorted by relative path) or a Parquet
image table written by `gan.data.write_image_table`. Images go to the extractor at their own size (it resizes to
its input size); when a folder mixes sizes, every image is resized (bicubic) to the first image's size so the set
stacks into one tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
EXTRACTOR_NAMES = ("effnet", "inception")  # = gan.metrics.EXTRACTORS (checked in the tests; not imported: heavy)
RESULT_KEYS = ("is_mean", "is_std", "fid", "kid_mean", "kid_std", "precision", "recall")


def read_folder(root: Path):
    """Every image under ``root`` (recursive) as uint8 (N, 3, H, W); mixed sizes are resized to the first's."""
    import numpy as np
    import torch
    from PIL import Image

    files = sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise ValueError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {root}")
    images, size = [], None
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                size = size or im.size
                if im.size != size:
                    im = im.resize(size, Image.BICUBIC)
                images.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1))
        except OSError as e:
            raise ValueError(f"cannot read image {p}: {e}") from e
    return torch.stack(images)


def read_images(path: str):
    """A folder of images or a .parquet image table -> uint8 (N, 3, H, W)."""
    p = Path(path)
    if p.is_dir():
        return read_folder(p)
    if p.suffix.lower() == ".parquet":
        from gan import data

        return data.read_image_table(p).images
    raise ValueError(f"{path} is neither a folder of images nor a .parquet image table")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


@click.command("score")
@click.argument("images", type=click.Path(exists=True), metavar="IMAGES")
@click.option("--reference", type=click.Path(exists=True), metavar="REAL",
              help="Real images (folder or .parquet) for FID, KID and precision/recall.")
@click.option("--extractor", type=click.Choice(EXTRACTOR_NAMES), default="effnet", show_default=True,
              help="effnet works offline; inception (the standard) needs torch-fidelity's weights file.")
@click.option("--splits", type=int, default=10, show_default=True,
              help="Inception Score splits (clamped to the image count).")
@click.option("--inception-weights", type=click.Path(dir_okay=False), metavar="PATH",
              help="torch-fidelity's weights-inception-2015-12-05-6726825d.pth (else $GANSWEEP_INCEPTION_WEIGHTS, "
                   "else the torch hub cache).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Images per extractor forward pass.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the IS shuffle and KID subsets.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def score(images, reference, extractor, splits, inception_weights, batch_size, seed, device, as_json):
    """Score IMAGES (a folder or .parquet table): Inception Score, and with --reference also FID/KID/PR.

    IS is reported as computed, exp(mean KL(p(y|x) || p(y))); higher is the usual reading, but for a single-class
    set (faces, one dog breed) a lower IS is not necessarily worse. Scores from different extractors are not
    comparable.
    """
    from sweep.errors import InputError, user_errors

    with user_errors():
        if splits < 1:
            raise InputError(f"--splits must be a positive integer, got {splits}")
        if batch_size < 1:
            raise InputError(f"--batch-size must be a positive integer, got {batch_size}")
        fake = read_images(images)
        real = read_images(reference) if reference else None
        from gan import metrics

        ext = metrics.get_extractor(extractor, _device(device), inception_weights=inception_weights)
        ref = metrics.reference_stats(real, ext, batch_size=batch_size) if real is not None else None
        result = metrics.compute_metrics(fake, ext, ref, splits=splits, seed=seed, batch_size=batch_size)

    out = {"extractor": extractor, "n": int(len(fake))}
    out.update({k: result[f"{k}_{extractor}"] for k in RESULT_KEYS if f"{k}_{extractor}" in result})
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"{len(fake)} images from {images}, extractor {extractor}"
               + (f", reference {reference} ({len(real)} images)" if real is not None else ""))
    rows = [("IS", f"{out['is_mean']:.4f} ± {out['is_std']:.4f}  ({min(splits, len(fake))} splits)")]
    if ref is not None:
        rows += [("FID", f"{out['fid']:.4f}"), ("KID", f"{out['kid_mean']:.6f} ± {out['kid_std']:.6f}"),
                 ("precision", f"{out['precision']:.4f}"), ("recall", f"{out['recall']:.4f}")]
    for name, value in rows:
        click.echo(f"  {name:<10}{value}")

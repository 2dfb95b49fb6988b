"""`gansweep score`: IS (and FID/KID/precision/recall against a reference set) of a folder or image table.

IMAGES and --reference are either a folder of images (read recursively, sorted by relative path) or a Parquet
image table written by `gan.imagetable.write_image_table`. Images go to the extractor at their own size (it resizes to
its input size); when a folder mixes sizes, every image is resized (bicubic) to the first image's size so the set
stacks into one tensor.
"""

from __future__ import annotations

import json

import click

from gan.metrics.schema import EXTRACTOR_NAMES, lookup

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
    from sweep.cli.errors import InputError, user_errors

    with user_errors():
        if splits < 1:
            raise InputError(f"--splits must be a positive integer, got {splits}")
        if batch_size < 1:
            raise InputError(f"--batch-size must be a positive integer, got {batch_size}")
        from gan import metrics
        from gan.imagetable import read_images
        from gan.runtime import select_device

        fake = read_images(images)
        real = read_images(reference) if reference else None
        ext = metrics.get_extractor(extractor, select_device(device), inception_weights=inception_weights)
        ref = metrics.reference_stats(real, ext, batch_size=batch_size) if real is not None else None
        result = metrics.compute_metrics(fake, ext, ref, splits=splits, seed=seed, batch_size=batch_size)

    out = {"extractor": extractor, "n": int(len(fake))}
    out.update({lookup(key)[0].name: value for key, value in result.items()})
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

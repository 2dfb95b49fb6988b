"""`gansweep data`: build a composed training set as a Parquet image table, and preview one as a labelled grid.

    gansweep data compose --dataset lfw-subset --n-real 100 --da hflip+contrast --n-aug 100 --out set.parquet
    gansweep data preview set.parquet --out grid.png

Every argument is checked (through `TrialConfig`) before any image is read; heavy imports happen inside commands.
"""

from __future__ import annotations

from collections import Counter

import click

from sweep.cli.errors import InputError, user_errors


@click.group()
def data():
    """Prepare and inspect image sets (real images + dataset-level augmentation)."""


@data.command()
@click.option("--dataset", default="lfw-subset", show_default=True, metavar="SRC",
              help="lfw-subset | folder:PATH | celeba:ROOT | oxford-pet:ROOT[:BREED] | lfw:ROOT")
@click.option("--n-real", type=click.IntRange(min=1), default=100, show_default=True,
              help="Real images drawn from the source.")
@click.option("--da", default="none", show_default=True, metavar="TYPES",
              help="DA type or pair, e.g. hflip or hflip+contrast; none for real images only.")
@click.option("--n-aug", type=click.IntRange(min=0), default=0, show_default=True, help="Augmented images to add.")
@click.option("--pair-ratio", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Share of the first DA type in a pair (0.5 = 1:1).")
@click.option("--image-size", type=click.Choice(["32", "64", "128"]), default="32", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Drives the image choice and the DA.")
@click.option("--allow-repeats", is_flag=True, help="Let flips/negpos reuse base images when n_aug > n_real.")
@click.option("--download", is_flag=True, help="Let torchvision download celeba / oxford-pet when missing.")
@click.option("--generated", "generated_path", type=click.Path(dir_okay=False), default=None, metavar="FILE.parquet",
              help="Image table of donor-GAN samples; required by the 'generated' DA.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Prepared-set cache (default $GANSWEEP_CACHE or ~/.cache/gansweep).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE.parquet")
def compose(dataset, n_real, da, n_aug, pair_ratio, image_size, seed, allow_repeats, download, generated_path,
            cache_dir, out):
    """Compose a training set (n_real real + n_aug augmented images) and write it as a Parquet image table."""
    from gan import augment
    from gan.augment import da_label
    from gan.cache import image_hash
    from gan.config import TrialConfig
    from gan.imagetable import read_image_table, write_image_table
    from gan.realsets import load_real
    from gan.sources import resolve_source

    image_size = int(image_size)
    with user_errors():
        cfg = TrialConfig(dataset=resolve_source(dataset), n_real=n_real, da=da, n_aug=n_aug, pair_ratio=pair_ratio,
                          image_size=image_size, seed=seed, allow_repeats=allow_repeats, download=download)
        donor = None
        if "generated" in cfg.da:
            if generated_path is None:
                raise InputError("DA 'generated' needs donor samples: pass --generated FILE.parquet "
                                 "(an image table of GAN samples at the training image size)")
            donor = read_image_table(generated_path).images
            if tuple(donor.shape[-2:]) != (image_size, image_size):
                raise InputError(f"--generated images are {donor.shape[-1]}x{donor.shape[-2]} but "
                                 f"--image-size is {image_size}")
            augment.check_da(cfg.da, n_real=cfg.n_real, n_aug=cfg.n_aug, pair_ratio=cfg.pair_ratio,
                             allow_repeats=cfg.allow_repeats, n_generated=len(donor))
        real = load_real(cfg.dataset, cfg.n_real, cfg.image_size, cfg.seed, download=cfg.download,
                         cache_dir=cache_dir)
        composed = augment.compose(real, cfg.da, cfg.n_aug, pair_ratio=cfg.pair_ratio, seed=cfg.seed,
                                   generated=donor, allow_repeats=cfg.allow_repeats)
        meta = dict(dataset=cfg.dataset, n_real=cfg.n_real, image_size=cfg.image_size, seed=cfg.seed,
                    da=da_label(cfg.da), n_aug=cfg.n_aug, pair_ratio=cfg.pair_ratio, allow_repeats=cfg.allow_repeats,
                    arm=cfg.arm, real_hash=image_hash(real.images), generated=generated_path)
        write_image_table(out, composed, metadata=meta)
    counts = ", ".join(f"{t} {n}" for t, n in Counter(composed.da_type).items())
    click.echo(f"wrote {len(composed)} images ({image_size}x{image_size}) to {out}: {counts}")


@data.command()
@click.argument("table", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="GRID.png")
@click.option("--per-type", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images shown per DA type (one row each).")
def preview(table, out, per_type):
    """Draw a labelled grid of an image table: one row per DA type."""
    from gan.imagetable import preview_grid, read_image_table

    with user_errors():
        images = read_image_table(table)
    preview_grid(images, per_type=per_type).save(out)
    click.echo(f"wrote {out}: {len(set(images.da_type))} row(s), up to {per_type} images each")

"""`gansweep train`: one GAN training run on this machine, without Ray or MLflow.

Loads the real images, composes the augmented training set exactly as a sweep trial would, trains, and writes
`config.json` (the flat config), sample grids (`gan.train.grid_name`), `log.jsonl` and `state.pt` into --out. Every
input is checked (by building the `TrialConfig`) before any data is read.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from gan import augment, imagetable, realsets
from gan import train as gtrain
from gan.config import IMAGE_SIZES, PRECISIONS, TrialConfig, flat
from gan.runtime import resolve_precision, select_device, set_threads
from sweep.cli.errors import InputError, user_errors

_D = {f.name: f.default for f in dataclasses.fields(TrialConfig)}  # CLI defaults = the dataclass's defaults


@click.command("train")
@click.option("--dataset", default=_D["dataset"], show_default=True, metavar="SRC",
              help="lfw-subset | folder:PATH | celeba:ROOT | oxford-pet:ROOT[:BREED] | lfw:ROOT")
@click.option("--n-real", type=int, default=_D["n_real"], show_default=True,
              help="Real images drawn from the source.")
@click.option("--da", default="none", show_default=True, metavar="TYPES",
              help="DA type or pairing joined by '+': contrast, negpos, hflip, vflip, generated (e.g. hflip+contrast).")
@click.option("--n-aug", type=int, default=_D["n_aug"], show_default=True,
              help="Augmented images added to the real ones.")
@click.option("--pair-ratio", type=float, default=_D["pair_ratio"], show_default=True,
              help="Share of the first DA type of a pair (0.5 = 1:1).")
@click.option("--allow-repeats", is_flag=True, help="Let flip/negpos repeat base images when n_aug > n_real.")
@click.option("--generated", "generated_path", type=click.Path(dir_okay=False), metavar="FILE.parquet",
              help="Donor GAN samples for the `generated` DA (an image table, e.g. from a donor run).")
@click.option("--image-size", type=click.Choice([str(s) for s in IMAGE_SIZES]), default=str(_D["image_size"]),
              show_default=True, help="Training resolution.")
@click.option("--g-width", type=int, default=_D["g_width"], show_default=True, help="Generator base width (ngf).")
@click.option("--d-width", type=int, default=_D["d_width"], show_default=True, help="Discriminator base width (ndf).")
@click.option("--lr", type=float, default=_D["lr"], show_default=True, help="Adam learning rate (G and D).")
@click.option("--steps", type=int, default=_D["steps"], show_default=True, help="Training steps.")
@click.option("--batch-size", type=int, default=_D["batch_size"], show_default=True)
@click.option("--seed", type=int, default=_D["seed"], show_default=True,
              help="Drives data choice, DA, init and noise.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=_D["precision"], show_default=True,
              help="auto = bf16 on CUDA, fp32 on CPU.")
@click.option("--eval-every", type=int, default=_D["eval_every"], show_default=True,
              help="Sample grid every this many steps.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--threads", type=int, default=None, help="Torch CPU threads (default: torch's choice).")
@click.option("--download", is_flag=True, help="Let torchvision download celeba/oxford-pet/lfw if missing.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Output folder (created).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(dataset, n_real, da, n_aug, pair_ratio, allow_repeats, generated_path, image_size, g_width, d_width, lr,
          steps, batch_size, seed, precision, eval_every, device, threads, download, out_dir, quiet):
    """Train one DCGAN on a real set plus dataset-level augmentation; write sample grids and a checkpoint."""
    with user_errors():  # every input error is one line, exit 2, before any work
        cfg = TrialConfig(dataset=dataset, n_real=n_real, da=da, n_aug=n_aug, pair_ratio=pair_ratio,
                          allow_repeats=allow_repeats, image_size=int(image_size), g_width=g_width, d_width=d_width,
                          lr=lr, steps=steps, batch_size=batch_size, seed=seed, precision=precision,
                          eval_every=eval_every, download=download)
        if "generated" in cfg.da and not generated_path:
            raise InputError("DA 'generated' needs donor GAN samples: pass --generated FILE.parquet")
        if generated_path and "generated" not in cfg.da:
            raise InputError("--generated is only used with the 'generated' DA (e.g. --da generated)")
        if generated_path and not Path(generated_path).is_file():
            raise InputError(f"--generated {generated_path} does not exist")
        if threads is not None and threads < 1:
            raise InputError(f"--threads must be a positive integer, got {threads}")
        dev = select_device(device)

    set_threads(threads)
    with user_errors():  # a missing folder or a bad donor table is still a one-line error
        real = realsets.load_real(cfg.dataset, cfg.n_real, cfg.image_size, cfg.seed, download=cfg.download)
        donor = imagetable.read_image_table(generated_path).images if generated_path else None
        composed = augment.compose(real, cfg.da, cfg.n_aug, pair_ratio=cfg.pair_ratio, seed=cfg.seed,
                                   generated=donor, allow_repeats=cfg.allow_repeats)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(flat(cfg), indent=2) + "\n")
    click.echo(f"training {cfg.arm} on {len(composed)} images ({len(real)} real) at {cfg.image_size}px, "
               f"{cfg.steps} steps on {dev} ({resolve_precision(cfg.precision, dev)}) -> {out}", err=True)
    state = gtrain.train(cfg, composed.images, out, device=dev, progress="off" if quiet else "bar")
    status = "diverged" if state.diverged else "done"
    click.echo(f"{status}: {state.step} steps in {state.elapsed:.1f}s; wrote {out / 'state.pt'}", err=True)

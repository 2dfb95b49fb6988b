"""What a trial needs besides its config: the real set, donor-GAN samples for `generated`, real-set statistics.

Trials with the same `input_key` share one `TrialInputs`. The driver loads every real set itself before Ray starts
(`load_real_sets`, so bad data fails in one line, not inside a Ray task), then prepares each input once
(`prepare_inputs`: reference statistics and the donor GAN, as a Ray task with a trial's resources) and hands the lot
to every trial through `tune.with_parameters` (the object store), never through `param_space`.

Donor samples come from a pool of fixed size (`donor_pool_size`: twice the real set, the most any study-1 arm takes)
cached under a key of the real images' content and the donor's settings, so a trial's training set never depends on
which other arms share the sweep.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from gan import imagetable, metrics, sources, train
from gan.cache import cache_root, image_hash
from gan.config import TrialConfig
from gan.imagetable import ImageSet
from gan.runtime import select_device
from trainables import storage

# The fields of TrialConfig that decide the donor GAN (with the real images' content, and so its samples).
DONOR_FIELDS = ("image_size", "seed", "donor_steps", "model", "nz", "g_width", "d_width", "batch_size", "lr", "beta1",
                "beta2", "precision")


@dataclass
class TrialInputs:
    real: ImageSet  # the n_real training images
    reference: metrics.RealStats  # statistics of the metrics' reference set under the trials' extractor
    generated: torch.Tensor | None = None  # uint8 donor samples (a pool of `donor_pool_size`), when an arm needs them
    donor: dict | None = None  # where the donor lives, its config, and whether it was trained now or reused


def data_key(cfg: TrialConfig) -> tuple:
    """What decides a trial's real images."""
    return cfg.dataset, cfg.n_real, cfg.image_size, cfg.seed


def input_key(cfg: TrialConfig) -> str:
    """The key under which a trial finds its inputs: its real set, extractor and donor settings."""
    return (f"{cfg.dataset}|n{cfg.n_real}|s{cfg.image_size}|seed{cfg.seed}|{cfg.extractor}"
            f"|donor-{donor_settings_key(cfg)}")


def load_real_sets(cfgs: list[TrialConfig], cache_dir=None) -> dict[tuple, ImageSet]:
    """Every distinct real set of `cfgs`, by `data_key`; raises ValueError/FileNotFoundError (one line) on bad data."""
    out = {}
    for cfg in cfgs:
        key = data_key(cfg)
        if key not in out:
            out[key] = sources.load_real(cfg.dataset, cfg.n_real, cfg.image_size, cfg.seed, download=cfg.download,
                                         cache_dir=cache_dir)
    return out


def donor_config(cfg: TrialConfig) -> TrialConfig:
    """The donor GAN: the trial's real set and model, no DA, trained for `donor_steps`."""
    return cfg.replace(da=(), n_aug=0, steps=cfg.donor_steps, eval_every=cfg.donor_steps)


def donor_settings_key(cfg: TrialConfig) -> str:
    """A hash of the config fields that shape a donor (the real images' content joins it in `donor_key`)."""
    blob = json.dumps({k: getattr(cfg, k) for k in DONOR_FIELDS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def donor_key(cfg: TrialConfig, real: ImageSet) -> str:
    """Cache key of a donor: its settings and the content of the real images it learns from."""
    return hashlib.sha256(f"{donor_settings_key(cfg)}|{image_hash(real.images)}".encode()).hexdigest()[:16]


def donor_pool_size(cfg: TrialConfig) -> int:
    """Donor samples drawn once per donor: twice the real set, the largest `generated` count of any study-1 arm."""
    return 2 * cfg.n_real


def needs_donor(cfgs: list[TrialConfig]) -> bool:
    return any("generated" in cfg.da for cfg in cfgs)


def sample_donor(state, cfg: TrialConfig, n: int, device) -> torch.Tensor:
    """`n` donor samples from a noise stream fixed by the seed (the pool of one donor is always the same)."""
    g = torch.Generator().manual_seed(10_000 + cfg.seed)
    z = torch.randn(n, cfg.nz, 1, 1, generator=g).to(device)
    return train.generate(state.G, z).cpu()


def prepare_inputs(cfgs: list[TrialConfig], real: ImageSet, donor_dir: str | None, cache_dir: str | None = None,
                   device: str = "auto") -> TrialInputs:
    """The shared inputs of trials that have one `input_key`: reference statistics, and the donor GAN's samples when
    an arm uses `generated` (trained now, or reused from the donor cache). Runs in the driver (in-process) or as a
    Ray task on a worker."""
    cfg = cfgs[0]
    dev = select_device(device)
    extractor = metrics.get_extractor(cfg.extractor, dev, inception_weights=cfg.inception_weights or None)
    reference = metrics.reference_stats(real.images, extractor, cache_dir=cache_dir)
    generated, donor = None, None
    if needs_donor(cfgs):
        generated, donor = load_or_train_donor(donor_config(cfg), real, donor_dir, dev)
    return TrialInputs(real=real, reference=reference, generated=generated, donor=donor)


def load_or_train_donor(dcfg: TrialConfig, real: ImageSet, donor_dir: str | None, device) -> tuple[torch.Tensor, dict]:
    """The donor's sample pool from `<donor_dir>/<key>/` (state.pt + samples.parquet), or from a donor trained now.

    `donor_dir` is a local path or a storage URI (a sweep puts it beside its sweeps so later sweeps reuse it).
    Returns the samples and an info dict (path, key, config, trained: bool, train_seconds).
    """
    root = donor_dir or str(cache_root() / "donors")
    key = donor_key(dcfg, real)
    remote = storage.join(root, key)
    work = tempfile.mkdtemp(prefix="gansweep-donor-") if storage.is_uri(remote) else remote
    storage.download_dir(remote, work)
    folder = Path(work)
    samples_path, state_path = folder / "samples.parquet", folder / "state.pt"
    pool = donor_pool_size(dcfg)
    info = {"path": remote, "key": key, "config": dataclasses.asdict(dcfg), "trained": False}
    if samples_path.exists():
        cached = imagetable.read_image_table(samples_path).images
        if len(cached) == pool:
            return cached, info
    folder.mkdir(parents=True, exist_ok=True)
    if state_path.exists():
        state = train.load_state(dcfg, state_path, device)
    else:
        info["trained"] = True
        print(f"gansweep: training the donor GAN {key} ({dcfg.donor_steps} steps on {len(real)} images of "
              f"{dcfg.dataset}, seed {dcfg.seed})", file=sys.stderr, flush=True)
        state = train.train(dcfg, real.images, folder, device=device, progress=False)
        if state.diverged:
            raise RuntimeError(f"the donor GAN for {dcfg.dataset} (seed {dcfg.seed}) diverged; "
                               "change donor_steps or the seed")
    samples = sample_donor(state, dcfg, pool, device)
    n = len(samples)
    imagetable.write_image_table(samples_path, ImageSet(samples, ("donor",) * n, ("generated",) * n, tuple(range(n))),
                                 metadata={"donor": info["config"]})
    storage.upload_dir(work, remote)
    info["samples"] = pool
    info["train_seconds"] = float(state.elapsed)
    return samples, info

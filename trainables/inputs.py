"""What a trial needs besides its config: the real set, donor-GAN samples for `generated`, real-set features.

Trials with the same (dataset, n_real, image_size, seed, extractor, donor config) share one `TrialInputs`. The
driver prepares each once, before any trial starts, and hands the lot to every trial through
`tune.with_parameters` (the object store), never through `param_space`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gan.cache import cache_root
from gan.config import TrialConfig
from gan.imagetable import ImageSet

# The fields of TrialConfig that decide the donor GAN (and so its samples).
DONOR_FIELDS = ("dataset", "n_real", "image_size", "seed", "donor_steps", "model", "nz", "g_width", "d_width",
                "batch_size", "lr", "beta1", "beta2", "precision")


@dataclass
class TrialInputs:
    real: ImageSet  # the n_real real images
    reference: object  # gan.metrics.RealStats of `real` under the trials' extractor
    generated: torch.Tensor | None = None  # uint8 donor samples, when some trial uses `generated`
    donor: dict | None = None  # where the donor lives, its config, and whether it was trained now or reused


def input_key(cfg: TrialConfig) -> str:
    """The key under which a trial finds its inputs: its real set, extractor and donor."""
    return f"{cfg.dataset}|n{cfg.n_real}|s{cfg.image_size}|seed{cfg.seed}|{cfg.extractor}|donor-{donor_key(cfg)}"


def donor_config(cfg: TrialConfig) -> TrialConfig:
    """The donor GAN: the trial's real set and model, no DA, trained for `donor_steps`."""
    return cfg.replace(da=(), n_aug=0, steps=cfg.donor_steps, eval_every=cfg.donor_steps)


def donor_key(cfg: TrialConfig) -> str:
    """Cache key of a donor: a hash of every field that shapes it."""
    blob = json.dumps({k: getattr(cfg, k) for k in DONOR_FIELDS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def generated_needed(cfgs: list[TrialConfig]) -> int:
    """The most donor samples any one trial of `cfgs` takes (0 when none uses `generated`)."""
    from gan.augment import split_counts

    need = 0
    for cfg in cfgs:
        for name, count in split_counts(cfg.da, cfg.n_aug, cfg.pair_ratio):
            if name == "generated":
                need = max(need, count)
    return need


def sample_donor(state, cfg: TrialConfig, n: int, device) -> torch.Tensor:
    """`n` donor samples from a noise stream fixed by the seed (the first k samples never depend on n)."""
    from gan.train import generate

    g = torch.Generator().manual_seed(10_000 + cfg.seed)
    z = torch.randn(n, cfg.nz, 1, 1, generator=g).to(device)
    return generate(state.G, z).cpu()


def prepare_inputs(cfgs: list[TrialConfig], donor_dir: str | None, cache_dir: str | None = None,
                   device: str = "auto") -> TrialInputs:
    """Build the shared inputs of trials that have one `input_key`: load the real set, train or reuse the donor,
    and compute the reference features. Runs in the driver (in-process) or as a Ray task on a worker.
    """
    from gan import metrics, sources
    from gan.runtime import select_device

    cfg = cfgs[0]
    dev = select_device(device)
    real = sources.load_real(cfg.dataset, cfg.n_real, cfg.image_size, cfg.seed, download=cfg.download,
                          cache_dir=cache_dir)
    extractor = metrics.get_extractor(cfg.extractor, dev, inception_weights=cfg.inception_weights or None)
    reference = metrics.reference_stats(real.images, extractor, cache_dir=cache_dir)
    generated, donor = None, None
    need = generated_needed(cfgs)
    if need:
        generated, donor = load_or_train_donor(donor_config(cfg), real, need, donor_dir, dev)
    return TrialInputs(real=real, reference=reference, generated=generated, donor=donor)


def load_or_train_donor(dcfg: TrialConfig, real: ImageSet, need: int, donor_dir: str | None,
                        device) -> tuple[torch.Tensor, dict]:
    """Donor samples from `<donor_dir>/<key>/` (state.pt + samples.parquet) or from a freshly trained donor.

    `donor_dir` is a local path or a storage URI (the sweep puts it in its storage so later sweeps reuse it).
    Returns the samples and an info dict (path, config, trained: bool, grid: the donor's last sample grid).
    """
    import tempfile

    from gan import imagetable, train
    from trainables import storage

    root = donor_dir or str(cache_root() / "donors")
    remote = storage.join(root, donor_key(dcfg))
    work = tempfile.mkdtemp(prefix="gansweep-donor-") if storage.is_uri(remote) else remote
    storage.download_dir(remote, work)
    folder = Path(work)
    samples_path, state_path = folder / "samples.parquet", folder / "state.pt"
    info = {"path": remote, "key": donor_key(dcfg), "config": dataclasses.asdict(dcfg), "trained": False}
    if samples_path.exists():
        cached = imagetable.read_image_table(samples_path).images
        if len(cached) >= need:
            return cached[:need], info
    folder.mkdir(parents=True, exist_ok=True)
    if state_path.exists():
        state = train.load_state(dcfg, state_path, device)
    else:
        info["trained"] = True
        state = train.train(dcfg, real.images, folder, device=device, progress=False)
        if getattr(state, "diverged", False):
            raise RuntimeError(f"the donor GAN for {dcfg.dataset} (seed {dcfg.seed}) diverged; "
                               "change donor_steps or the seed")
    samples = sample_donor(state, dcfg, need, device)
    n = len(samples)
    imagetable.write_image_table(samples_path, ImageSet(samples, ("donor",) * n, ("generated",) * n, tuple(range(n))),
                           metadata={"donor": dataclasses.asdict(dcfg)})
    storage.upload_dir(work, remote)
    info["samples"] = n
    info["train_seconds"] = float(getattr(state, "elapsed", 0.0))
    return samples, info

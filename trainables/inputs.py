"""What a trial needs besides its config: the real set, the metrics' reference, donor-GAN samples for `generated`.

Trials with the same `input_key` share one `TrialInputs`. The driver loads every real set itself before Ray starts
(`load_real_sets`, so bad data fails in one line, not inside a Ray task), then prepares each input once
(`prepare_inputs`: reference statistics, the leakage and memorisation probes, the real-vs-reference floor and the
donor GAN, as a Ray task with a trial's resources) and hands the lot to every trial through `tune.with_parameters` (the object store),
never through `param_space`.

The reference (`TrialConfig.reference`) is the held-out set by default: `n_heldout` real images drawn after the
training ones by the same seeded order, which the GAN never sees, split from them by person where the source knows
people (`TrialConfig.split`, `gan.realsets.resolve_split`). A source that cannot spare all `n_heldout` (or a study
that asks for fewer than `MIN_HELDOUT`) fails in the driver before Ray starts (`check_reference`), unless the config
asks for `reference = "train"`: then the reference is the training set itself, and `notes` says so in words
(memorisation then scores as quality). The floor scores the real training images against the reference as if they
were samples: what a perfect generator of *this* training set would get.

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

from gan import imagetable, leakage, metrics, realsets, train
from gan.cache import cache_root, image_hash
from gan.checkpoint import load_state
from gan.config import TrialConfig, flat
from gan.imagetable import ImageSet
from gan.metrics.memorisation import memorisation_probe
from gan.runtime import configure_backends, select_device, set_threads
from gan import storage

# The fields of TrialConfig that decide the donor GAN (with the real images' content, and so its samples).
DONOR_FIELDS = ("image_size", "seed", "donor_steps", "model", "nz", "g_width", "d_width", "batch_size", "lr", "beta1",
                "beta2", "precision", "deterministic")
MIN_HELDOUT = 10  # the fewest held-out images a reference may hold


@dataclass
class TrialInputs:
    real: ImageSet  # the n_real training images
    heldout: ImageSet  # the held-out images (possibly fewer than n_heldout, possibly none)
    reference: metrics.RealStats  # the metrics' reference set under the trials' extractor (with the leakage probe)
    held_out: bool  # whether `reference` is the held-out set (else: the training set)
    generated: torch.Tensor | None = None  # uint8 donor samples (a pool of `donor_pool_size`), when an arm needs them
    donor: dict | None = None  # where the donor lives, its config, and whether it was trained now or reused
    floor: dict = dataclasses.field(default_factory=dict)  # the real training images' own scores against the reference
    notes: list[str] = dataclasses.field(default_factory=list)  # what a reader of the scores must know, in words

    @property
    def reference_images(self) -> ImageSet:
        return self.heldout if self.held_out else self.real


def data_key(cfg: TrialConfig) -> tuple:
    """What decides a trial's real images (training and held out)."""
    return cfg.dataset, cfg.n_real, cfg.n_heldout, cfg.image_size, cfg.seed, realsets.resolve_split(cfg.dataset,
                                                                                                   cfg.split)


def input_key(cfg: TrialConfig) -> str:
    """The key under which a trial finds its inputs: its real sets, extractor and donor settings."""
    split = realsets.resolve_split(cfg.dataset, cfg.split)
    return (f"{cfg.dataset}|n{cfg.n_real}+{cfg.n_heldout}|{split}|ref-{cfg.reference}|s{cfg.image_size}"
            f"|seed{cfg.seed}|{cfg.extractor}"
            f"|{'method' if cfg.method else 'da'}|donor-{donor_settings_key(cfg)}")


def load_real_sets(cfgs: list[TrialConfig], cache_dir=None) -> dict[tuple, tuple[ImageSet, ImageSet]]:
    """Every distinct (training, held-out) pair of `cfgs`, by `data_key`; ValueError/FileNotFoundError (one line) on
    bad data or a source that cannot spare the reference (`check_reference`)."""
    out = {}
    for cfg in cfgs:
        key = data_key(cfg)
        if key not in out:
            out[key] = realsets.load_split(cfg.dataset, cfg.n_real, cfg.n_heldout, cfg.image_size, cfg.seed,
                                          download=cfg.download, cache_dir=cache_dir, split=cfg.split)
        check_reference(cfg, out[key][1])
    return out


def check_reference(cfg: TrialConfig, heldout: ImageSet) -> None:
    """ValueError (one line) when `cfg` asks for a held-out reference that `heldout` cannot be."""
    if cfg.reference != "heldout":
        return
    if cfg.n_heldout < MIN_HELDOUT:
        raise ValueError(f"n_heldout = {cfg.n_heldout} leaves no held-out reference (at least {MIN_HELDOUT}); set "
                         "n_heldout, or reference=train to score against the training images (a copying GAN then "
                         "scores as perfect)")
    if len(heldout) < cfg.n_heldout:
        split = realsets.resolve_split(cfg.dataset, cfg.split)
        by = f" of people not in the training set (split={split})" if split != "image" else ""
        raise ValueError(f"{cfg.dataset} (seed {cfg.seed}) can spare only {len(heldout)} held-out images{by} after "
                         f"the {cfg.n_real} training ones, not n_heldout = {cfg.n_heldout}; lower n_real or n_heldout, "
                         "or set reference=train to score against the training images")


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


def prepare_inputs(cfgs: list[TrialConfig], real: ImageSet, heldout: ImageSet, donor_dir: str | None,
                   cache_dir: str | None = None, device: str = "auto", threads: int | None = None) -> TrialInputs:
    """The shared inputs of trials that have one `input_key`: reference statistics (held-out where the source could
    spare `MIN_HELDOUT` images), the leakage probe (study-1 trials), the floor, and the donor GAN's samples when an arm
    uses `generated` (trained now, or reused from the donor cache). Runs in the driver (in-process) or as a Ray task
    on a worker, `threads` torch threads (None: torch's choice)."""
    cfg = cfgs[0]
    set_threads(threads)
    dev = select_device(device)
    configure_backends(dev, cfg.deterministic)  # the reference features repeat bit for bit where the trials do
    extractor = metrics.get_extractor(cfg.extractor, dev, inception_weights=cfg.inception_weights or None)
    held_out = cfg.reference == "heldout"
    if held_out:
        check_reference(cfg, heldout)
    ref_images = heldout if held_out else real
    reference = metrics.reference_stats(ref_images.images, extractor, cache_dir=cache_dir)
    if not cfg.method:  # a DA study: how much of each appearance-changing DA shows in the samples
        reference = leakage.with_leakage(reference, ref_images.images, cache_dir=cache_dir)
    inputs = TrialInputs(real=real, heldout=heldout, reference=reference, held_out=held_out,
                         notes=reference_notes(cfg, real, heldout, held_out))
    inputs.floor = floor_scores(cfg, inputs, extractor)
    if held_out:  # memorisation needs fresh real images to calibrate against: only with a held-out reference
        train_pool = metrics.reference_stats(real.images, extractor, cache_dir=cache_dir).pool
        probe = memorisation_probe(train_pool, reference.pool, extractor.name, seed=cfg.seed)
        inputs.reference = dataclasses.replace(reference, memorisation=probe)
        inputs.floor[metrics.metric_key("memorisation", extractor.name)] = probe.heldout_score
    inputs.notes += floor_notes(cfg, inputs.floor)
    if needs_donor(cfgs):
        inputs.generated, inputs.donor = load_or_train_donor(donor_config(cfg), real, donor_dir, dev, cache_dir)
    return inputs


def reference_notes(cfg: TrialConfig, real: ImageSet, heldout: ImageSet, held_out: bool) -> list[str]:
    """Which reference the scores of this input use, and why, in words."""
    where = f"{cfg.dataset} (seed {cfg.seed})"
    if held_out:
        split = realsets.resolve_split(cfg.dataset, cfg.split)
        how = {"identity": "of people none of the training images shows (split by identity)",
               "subfolder": "from sub-folders none of the training images comes from (split by sub-folder)",
               "image": "(split by image: a person or scene may appear on both sides)"}[split]
        return [f"Reference for {where}: {len(heldout)} held-out real images {how}, drawn after the {len(real)} "
                "training images in the same seeded order; the GAN never saw them."]
    return [f"Reference for {where}: the {len(real)} training images themselves (reference=train was asked for). "
            "A GAN that copies its training images scores as a perfect one here, and no floor can be computed."]


# Metrics whose value depends on the number of samples scored (FID's bias; the k-NN radii of precision/recall): a
# floor scored on fewer images than a trial's `eval_samples` leaves them out rather than show an incomparable value.
N_DEPENDENT = ("fid", "precision", "recall")


def floor_scores(cfg: TrialConfig, inputs: TrialInputs, extractor) -> dict:
    """The real training images scored as if they were samples (as many as a trial scores, fixed seed) against the
    reference: the floor no arm can be expected to beat. Against a training-set reference only their IS means
    anything (the distances would be of a set to itself). A training set smaller than `eval_samples` is scored
    whole, and its `N_DEPENDENT` scores are dropped (listed under "dropped"; `floor_notes` says so)."""
    n = min(cfg.eval_samples, len(inputs.real))
    pick = torch.randperm(len(inputs.real), generator=torch.Generator().manual_seed(cfg.seed))[:n].sort().values
    images = inputs.real.images[pick]
    scores = metrics.compute_metrics(images, extractor, inputs.reference if inputs.held_out else None,
                                     splits=min(cfg.is_splits, n), seed=cfg.seed)
    dropped = [metrics.metric_key(m, cfg.extractor) for m in N_DEPENDENT] if n < cfg.eval_samples else []
    scores = {k: v for k, v in scores.items() if k not in dropped}
    return {"n_samples": n, "n_reference": len(inputs.reference), **scores,
            **({"dropped": dropped} if dropped and inputs.held_out else {})}


def floor_notes(cfg: TrialConfig, floor: dict) -> list[str]:
    """What a reader of the floor row must know: whether it was scored at the arms' sample count, and if not which
    of its scores are left out."""
    if not floor.get("dropped"):
        return []
    return [f"Floor for {cfg.dataset} (seed {cfg.seed}): only {floor['n_samples']} training images for the arms' "
            f"{cfg.eval_samples} samples, so its {', '.join(floor['dropped'])} (which depend on the sample count) are "
            "left out; its KID (unbiased at any count) and IS are shown."]


def load_or_train_donor(dcfg: TrialConfig, real: ImageSet, donor_dir: str | None, device,
                        cache_dir: str | None = None) -> tuple[torch.Tensor, dict]:
    """The donor's sample pool from `<donor_dir>/<key>/` (state.pt + samples.parquet), or from a donor trained now
    (a progress line on stderr every tenth of its steps: a long donor inside a Ray task shows more than its start).

    `donor_dir` is a local path or a storage URI (a sweep puts it beside its sweeps so later sweeps reuse it); None
    means `donors/` under the cache root (`cache_dir`, else `gan.cache.cache_root`'s default). Returns the samples
    and an info dict (path, key, config, trained: bool, train_seconds).
    """
    root = donor_dir or str(cache_root(cache_dir) / "donors")
    key = donor_key(dcfg, real)
    remote = storage.join(root, key)
    work = tempfile.mkdtemp(prefix="gansweep-donor-") if storage.is_uri(remote) else remote
    storage.download_dir(remote, work)
    folder = Path(work)
    samples_path, state_path = folder / "samples.parquet", folder / "state.pt"
    pool = donor_pool_size(dcfg)
    info = {"path": remote, "key": key, "config": flat(dcfg), "trained": False}
    if samples_path.exists():
        cached = imagetable.read_image_table(samples_path).images
        if len(cached) == pool:
            info["train_seconds"] = float(imagetable.read_image_metadata(samples_path).get("train_seconds", 0.0))
            return cached, info
    folder.mkdir(parents=True, exist_ok=True)
    if state_path.exists():
        state = load_state(dcfg, state_path, device)
    else:
        info["trained"] = True
        print(f"gansweep: training the donor GAN {key} ({dcfg.donor_steps} steps on {len(real)} images of "
              f"{dcfg.dataset}, seed {dcfg.seed})", file=sys.stderr, flush=True)
        state = train.train(dcfg, real.images, folder, device=device, progress="lines", desc=f"gansweep: donor {key}")
        if state.diverged:
            raise RuntimeError(f"the donor GAN for {dcfg.dataset} (seed {dcfg.seed}) diverged; "
                               "change donor_steps or the seed")
    samples = sample_donor(state, dcfg, pool, device)
    n = len(samples)
    imagetable.write_image_table(samples_path, ImageSet(samples, ("donor",) * n, ("generated",) * n, tuple(range(n))),
                                 metadata={"donor": info["config"], "train_seconds": float(state.elapsed)})
    storage.upload_dir(work, remote)
    info["samples"] = pool
    info["train_seconds"] = float(state.elapsed)
    return samples, info

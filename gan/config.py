"""The one trial configuration: every knob of one training run, validated on construction.

A trainable starts with ``cfg = TrialConfig(**config)``; an unknown key raises ``TypeError`` and a bad value raises
``ValueError`` with one line naming what is allowed. ``flat(cfg)`` is the one config-to-dict step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from gan.augment import NONE, arm_label, check_da, da_label, parse_da
from gan.daug import parse_policy
from gan.methods import METHODS, SR_HIGH
from gan.models.srcnn import RECEPTIVE_FIELD
from gan.metrics.schema import EXTRACTOR_NAMES
from gan.realsets import resolve_split
from gan.sources import parse_source

IMAGE_SIZES = (32, 64, 128)
PRECISIONS = ("auto", "fp32", "bf16")
MODELS = ("dcgan",)
REFERENCES = ("heldout", "train")


@dataclass(frozen=True)
class TrialConfig:
    # --- data -------------------------------------------------------------------------------------------------------
    dataset: str = "lfw-subset"  # image source: lfw-subset | skimage-photos | folder:PATH | celeba:ROOT | lfw:ROOT
    #                              | oxford-pet:ROOT[:BREED]
    n_real: int = 100  # real images drawn from the source (chosen deterministically from `seed`)
    n_heldout: int = 0  # real images held out after them in the same seeded order: the metrics' reference (0 = none)
    reference: str = "heldout"  # the metrics' reference: heldout (n_heldout images the GAN never sees; a source that
    #                             cannot spare them fails before training) | train (the training images, said so)
    split: str = "auto"  # which images may be held out: identity (no person on both sides; celeba, lfw) | subfolder
    #                      (folders: no top sub-folder on both sides) | image | auto (identity where known, else image)
    image_size: int = 32  # training resolution (32, 64 or 128); with a `method`: the real set's and evaluation's size
    download: bool = False  # let torchvision download celeba/oxford-pet/lfw when the folder is missing
    # --- dataset-level augmentation ---------------------------------------------------------------------------------
    da: tuple[str, ...] = ()  # one or two DA types from gan.augment.AUGMENTATIONS; () (or "none") = real images only
    n_aug: int = 0  # augmented images added to the n_real real ones (0 exactly when da is empty)
    pair_ratio: float = 0.5  # share of the first DA type when two are paired (0.5 = the study's 1:1)
    allow_repeats: bool = False  # let a deterministic op (flip, negpos) repeat base images when n_aug > n_real
    donor_steps: int = 2000  # training steps of the donor GAN whose samples feed the `generated` DA
    # --- augmentation at the discriminator's input (gan.daug), for every method -----------------------------------
    d_aug: str = "none"  # none | diffaugment (policy always on) | ada (each op with an adaptive probability p)
    d_aug_policy: str = ""  # comma-separated gan.daug.OPS; "" = the mode's default (gan.daug.DEFAULT_POLICY)
    ada_target: float = 0.6  # ADA: the r_t = E[sign D(real)] that p is steered to (Karras et al. 2020)
    ada_images: int = 500_000  # ADA: images (steps x batch_size) over which p can go from 0 to 1 (their ada_kimg)
    ada_interval: int = 4  # ADA: steps between two adjustments of p
    ema: float = 0.999  # decay of the EMA generator that is scored and sampled (0 = score the raw generator)
    # --- study 2: the way to a large image --------------------------------------------------------------------------
    method: str = ""  # "" = a study-1 DA trial (a DCGAN at image_size); else a gan.methods.METHODS key (fixes the nets)
    time_budget: float = 0.0  # training seconds (SRCNN phase in, evaluation out); 0 = no budget: train all `steps`
    srcnn_steps: int = 2000  # SRCNN iterations of dcgan64+srcnn, run before the GAN's and counted apart from `steps`
    srcnn_lr: float = 1e-3  # SRCNN's Adam rate: last layer 1/10 of it, cosine-annealed to 0 over srcnn_steps
    srcnn_patch: int = 32  # side of the random 128x128-scale crops an SRCNN iteration trains on (batch_size of them)
    # --- model and optimisation (Radford et al. 2015 defaults) ------------------------------------------------------
    model: str = "dcgan"  # generator/discriminator family
    nz: int = 100  # latent size
    g_width: int = 64  # generator base width (ngf)
    d_width: int = 64  # discriminator base width (ndf)
    batch_size: int = 64  # images per step, drawn with replacement from the composed set
    lr: float = 2e-4  # Adam learning rate for both G and D
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    steps: int = 2000  # training steps (GAN iterations: one D update + one G update of every G/D pair each)
    precision: str = "auto"  # fp32 | bf16 (autocast) | auto = bf16 on CUDA, fp32 on CPU
    deterministic: bool = False  # GPU: deterministic kernels, no TF32 (slower; repeats bit for bit); CPU: exact either way
    seed: int = 0  # drives data choice, DA, init, noise and evaluation
    # --- evaluation -------------------------------------------------------------------------------------------------
    eval_every: int = 500  # report (metrics + checkpoint) every this many steps, and at the last step
    eval_samples: int = 500  # generated images scored per evaluation, from a fixed noise
    extractor: str = "effnet"  # feature extractor for IS/FID/KID/PR: effnet (offline) | inception (standard)
    is_splits: int = 10  # Inception Score splits (clamped to eval_samples)
    inception_weights: str = ""  # path to torch-fidelity's inception-v3-compat weights ("" = env var / cache)
    # --- bookkeeping ------------------------------------------------------------------------------------------------
    study: str = "adhoc"  # the study this trial belongs to (a key of search_spaces.STUDIES, or adhoc)

    def __post_init__(self):
        object.__setattr__(self, "da", parse_da(self.da))
        validate(self)

    @property
    def arm(self) -> str:
        """The arm this trial belongs to (seeds of one arm are replicates): the method for a study-2 trial (e.g.
        'stackgan128'), else the DA arm label, e.g. 'none', 'hflip@100', 'contrast+hflip@200'. The one place an arm
        is named. A study-1 arm with augmentation at D's input adds it: 'ada', 'vflip@64+ada' (a method trial's d_aug is
        a setting of the study, not part of its arm)."""
        if self.method:
            return self.method
        label = arm_label(self.da, self.n_aug, self.pair_ratio)
        return label if self.d_aug == "none" else self.d_aug if label == NONE else f"{label}+{self.d_aug}"

    @property
    def scored_generator(self) -> str:
        """Which generator is sampled and scored: 'ema' (the EMA copy, when ema > 0) or 'raw'."""
        return "ema" if self.ema > 0 else "raw"

    def replace(self, **changes) -> "TrialConfig":
        return dataclasses.replace(self, **changes)


def _fail(msg: str):
    raise ValueError(msg)


def validate(cfg: TrialConfig) -> None:
    """Every check that can run without reading data. Raises ValueError with one line."""
    parse_source(cfg.dataset)  # raises on an unknown source kind
    if cfg.reference not in REFERENCES:
        _fail(f"reference {cfg.reference!r} is unknown; allowed: {', '.join(REFERENCES)}")
    resolve_split(cfg.dataset, cfg.split)  # raises on a split the source cannot make
    if cfg.image_size not in IMAGE_SIZES:
        _fail(f"image_size {cfg.image_size} is not supported; allowed: {', '.join(map(str, IMAGE_SIZES))}")
    if cfg.precision not in PRECISIONS:
        _fail(f"precision {cfg.precision!r} is unknown; allowed: {', '.join(PRECISIONS)}")
    if cfg.model not in MODELS:
        _fail(f"model {cfg.model!r} is unknown; allowed: {', '.join(MODELS)}")
    if cfg.extractor not in EXTRACTOR_NAMES:
        _fail(f"extractor {cfg.extractor!r} is unknown; allowed: {', '.join(EXTRACTOR_NAMES)}")
    for name in ("n_real", "steps", "batch_size", "eval_every", "eval_samples", "nz", "g_width", "d_width",
                 "is_splits"):
        if int(getattr(cfg, name)) < 1:
            _fail(f"{name} must be a positive integer, got {getattr(cfg, name)}")
    if isinstance(cfg.n_heldout, bool) or int(cfg.n_heldout) != cfg.n_heldout or cfg.n_heldout < 0:
        _fail(f"n_heldout must be a non-negative integer (0 = score against the training images), got {cfg.n_heldout}")
    if not isinstance(cfg.deterministic, bool):
        _fail(f"deterministic must be true or false, got {cfg.deterministic!r}")
    if cfg.donor_steps < 1:
        _fail(f"donor_steps must be a positive integer, got {cfg.donor_steps}")
    if not cfg.lr > 0:
        _fail(f"lr must be > 0, got {cfg.lr}")
    _validate_daug(cfg)
    check_da(cfg.da, n_real=cfg.n_real, n_aug=cfg.n_aug, pair_ratio=cfg.pair_ratio, allow_repeats=cfg.allow_repeats)
    _validate_method(cfg)


def _validate_daug(cfg: TrialConfig) -> None:
    """d_aug and its policy, ADA's settings, the EMA decay."""
    parse_policy(cfg.d_aug, cfg.d_aug_policy)  # raises on an unknown mode or op
    if not 0 < cfg.ada_target < 1:
        _fail(f"ada_target must be between 0 and 1 (exclusive; Karras et al. use 0.6), got {cfg.ada_target}")
    if int(cfg.ada_images) != cfg.ada_images or cfg.ada_images < 1:
        _fail(f"ada_images must be a positive integer (images for p to go from 0 to 1), got {cfg.ada_images}")
    if int(cfg.ada_interval) != cfg.ada_interval or cfg.ada_interval < 1:
        _fail(f"ada_interval must be a positive integer (steps between adjustments of p), got {cfg.ada_interval}")
    if not (isinstance(cfg.ema, (int, float)) and not isinstance(cfg.ema, bool) and 0 <= cfg.ema < 1):
        _fail(f"ema must be a decay in [0, 1) (0 = score the raw generator; e.g. 0.999), got {cfg.ema!r}")


def _validate_method(cfg: TrialConfig) -> None:
    """The study-2 fields: the method, its sizes against image_size, the time budget and the SRCNN's settings."""
    if not (isinstance(cfg.time_budget, (int, float)) and not isinstance(cfg.time_budget, bool)
            and math.isfinite(cfg.time_budget) and cfg.time_budget >= 0):
        _fail(f"time_budget must be a number of seconds >= 0 (0 = no budget), got {cfg.time_budget!r}")
    if int(cfg.srcnn_steps) < 1:
        _fail(f"srcnn_steps must be a positive integer, got {cfg.srcnn_steps}")
    if not cfg.srcnn_lr > 0:
        _fail(f"srcnn_lr must be > 0, got {cfg.srcnn_lr}")
    if not RECEPTIVE_FIELD <= cfg.srcnn_patch <= SR_HIGH:
        _fail(f"srcnn_patch must be between {RECEPTIVE_FIELD} (the SRCNN's receptive field) and {SR_HIGH}, "
              f"got {cfg.srcnn_patch}")
    if not cfg.method:
        return
    if cfg.method not in METHODS:
        _fail(f"method {cfg.method!r} is unknown; allowed: {', '.join(METHODS)} (or '' for a study-1 DA trial)")
    method = METHODS[cfg.method]
    if cfg.da:
        _fail(f"da is a study-1 setting: a method trial trains on the real images alone (da=(), n_aug=0); "
              f"got da={da_label(cfg.da)!r} with method {cfg.method!r}")
    need = max(*method.train_sizes, method.output_size)
    if cfg.image_size < need:
        _fail(f"method {cfg.method} trains at {'/'.join(map(str, method.train_sizes))} px: image_size (the real "
              f"set and evaluation size) must be at least {need}, got {cfg.image_size}")
    if cfg.method == "stackgan128" and cfg.g_width % 2:
        _fail(f"stackgan128 needs an even g_width (its stage-II generator ends with g_width/2 channels), "
              f"got {cfg.g_width}")


def flat(cfg: TrialConfig) -> dict:
    """The config as the flat dict a trial receives and `TrialConfig(**flat(cfg))` rebuilds: every field, `da` as its
    '+'-joined label or 'none'. The one config-to-dict step (params.json, Tune's param space, dry runs, MLflow params,
    checkpoints, `gansweep train`'s config.json, the donor's record, the sweep record's configs)."""
    out = dataclasses.asdict(cfg)
    out["da"] = da_label(cfg.da)
    return out

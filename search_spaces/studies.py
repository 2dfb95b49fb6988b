"""Study presets: the published DA ablation on CelebA and Pomeranians, a CPU demo of it, a pairing-ratio grid, and
an Optuna search over DA choices.

`build_study(name, seeds=, overrides=)` turns a preset into a `GridStudy` or `OptunaStudy` and validates every trial config it can
produce (`TrialConfig(**config)` runs every check), so a bad study, override or count fails with one line before Ray
starts. Arms give their DA count as a multiple of `n_real` (the study's "DA 1000" and "DA 2000" on 1000 real images
are 1x and 2x), so an `n_real` override scales the counts with it.

Conventions shared by all presets:

* The donor GAN behind the `generated` DA trains as long as an arm (`donor_steps = steps`) unless `donor_steps` is
  overridden: in the study it is the same GAN, trained on the real set alone.
* Grids rank by FID (lower = closer to the real set) and show IS beside it; the Optuna search maximises IS by default
  (the standard reading, Salimans et al. 2016). The study read a *lower* IS as better for one-class sets; pass
  `--metric fid_<extractor> --mode min` (or `--mode min` on IS) to optimise the other way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

from gan.sources import parse_source, resolve_source
from gan.augment import NONE
from gan.config import TrialConfig, flat
from gan.metrics.schema import metric_key
from search_spaces.space import DASearch, Design, GridStudy, OptunaStudy

FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialConfig))
DEFAULTS: dict = {f.name: f.default for f in dataclasses.fields(TrialConfig)}
# Study 1's design: an arm is a DA choice; arms are compared within a dataset and DA count, against no DA.
DA_DESIGN = Design(arm_fields=("da", "n_aug", "pair_ratio"), group_by=("dataset", "n_aug"), baseline=NONE)
# Fields each arm (or the Optuna search) sets; an override of them would erase the study's design.
ARM_FIELDS = ("da", "n_aug", "pair_ratio", "study")
# Images in sources whose size is fixed and known without reading files (n_real beyond it can never be drawn).
EMBEDDED_SIZES = {"lfw-subset": 100}

# ----------------------------------------------------------------------------------------------------------------------
# Settings: every non-arm TrialConfig value a preset sets. Overrides replace any of them.

# The published runs, sized for a GPU cluster (not timed here; far too slow for a CPU). Resolution 64x64, not 128:
# the study resized its photos to 128x128 but trained "the common GAN configuration" of its ref. [3] without naming
# a training resolution; 64x64 is the DCGAN of Radford et al., IS/FID resize samples to 299 anyway, and a 64x64 step
# has a quarter of the pixels and one layer fewer per network. `--image-size 128` gives the study's photo size.
# Inception-v3 features, because published IS/FID numbers use them.
GPU_SETTINGS = dict(
    image_size=64,
    steps=20_000,  # ~640 passes over a 2000-image set at batch 64
    batch_size=64,
    g_width=64,
    d_width=64,
    eval_every=1000,
    eval_samples=5000,  # the study scored 1000 samples; 5000 shrinks the FID/KID bias (eval_samples=1000 to match)
    is_splits=10,
    extractor="inception",
)

# The `demo` study: the paper's 12 arms on the embedded LFW subset, sized for a laptop or a 2-core CI box (Ray runs
# 2 trials at a time there; ~30-40 s of CPU per trial). donor_steps follows steps unless set here.
DEMO_SETTINGS = dict(
    dataset="lfw-subset",
    n_real=100,
    image_size=32,
    steps=300,
    batch_size=32,
    g_width=32,
    d_width=32,
    eval_every=100,
    eval_samples=100,
    is_splits=5,
    extractor="effnet",
)

CELEBA = dict(dataset="celeba:data/celeba", n_real=1000)
# The study took 1000 Pomeranians from Oxford-IIIT Pet *and* a Google image search: Oxford alone has about 200, so
# the default is a folder you fill with 1000 Pomeranian photos. Oxford only: --dataset
# oxford-pet:data/oxford-pet:Pomeranian with n_real at most its size (DA counts scale with n_real).
POMERANIAN = dict(dataset="folder:data/pomeranian", n_real=1000)

# ----------------------------------------------------------------------------------------------------------------------
# Arms


@dataclass(frozen=True)
class Arm:
    """One ablation arm: a DA choice, its count as a multiple of n_real, and the pair split."""

    da: str  # 'none', 'hflip', 'contrast+hflip'
    count: float  # DA count / n_real (0 for none)
    pair_ratio: float = 0.5  # share of the first type in a pair

    def resolve(self, n_real: int) -> dict:
        return {"da": self.da, "n_aug": int(self.count * n_real + 0.5), "pair_ratio": self.pair_ratio}


SINGLES = ("contrast", "negpos", "hflip", "vflip", "generated")
# The study paired only the types that did not leak into the generator (negpos and vflip did).
PAIRED = ("contrast", "hflip", "generated")
PAIRS = tuple(f"{a}+{b}" for i, a in enumerate(PAIRED) for b in PAIRED[i + 1:])


def paper_arms() -> list[Arm]:
    """The study's 12 arms: no DA; each single type at 1x n_real; each pair 1:1 at 1x and 2x n_real."""
    return [Arm("none", 0), *(Arm(t, 1) for t in SINGLES), *(Arm(p, c) for c in (1, 2) for p in PAIRS)]


RATIOS = (0.25, 0.5, 0.75)
RATIO_COUNTS = (0.5, 1, 2)


def ratio_arms() -> list[Arm]:
    """No DA, and each pair at every ratio in RATIOS and every count in RATIO_COUNTS (x n_real): 1 + 27 arms."""
    return [Arm("none", 0), *(Arm(p, c, r) for p in PAIRS for c in RATIO_COUNTS for r in RATIOS)]


# ----------------------------------------------------------------------------------------------------------------------
# Overrides and validation


def _coerce(key: str, value):
    """An override value in its field's type; strings from the command line are converted ('500' -> 500)."""
    default = DEFAULTS[key]
    if not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise ValueError(f"override {key}={value!r} is not a valid {type(default).__name__}") from None
    return value


def check_overrides(name: str, overrides: dict | None, *, what: str = "set by each arm") -> dict:
    """Validate override keys (TrialConfig fields, not arm fields) and coerce string values. Returns a new dict.

    A None value means "not given" and is dropped, so a CLI can pass all its options through.
    """
    out = {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in DEFAULTS:
            raise ValueError(f"unknown setting {key!r}; allowed: {', '.join(f for f in FIELDS if f not in ARM_FIELDS)}")
        if key in ARM_FIELDS:
            raise ValueError(f"{key} is {what} in study {name!r} and cannot be overridden; "
                             f"overridable: {', '.join(f for f in FIELDS if f not in ARM_FIELDS)}")
        out[key] = value if key == "dataset" else _coerce(key, value)
    return out


def _datasets(name: str, defaults: Sequence[str], override) -> list[str]:
    """The study's datasets after a `dataset` override: a string for a one-dataset study, one per dataset otherwise."""
    if override is None:
        return list(defaults)
    given = [override] if isinstance(override, str) else list(override)
    if len(given) != len(defaults):
        raise ValueError(f"study {name!r} runs {len(defaults)} dataset(s) ({', '.join(defaults)}); "
                         f"give {len(defaults)} dataset override(s) in that order, got {len(given)}")
    return given


def _check_source(name: str, dataset: str, n_real: int) -> None:
    """Fail early when a source is known to be smaller than n_real."""
    kind = parse_source(dataset).kind
    size = EMBEDDED_SIZES.get(kind)
    if size is not None and n_real > size:
        raise ValueError(f"study {name!r}: dataset {dataset} has {size} images but n_real={n_real}; "
                         f"override n_real (at most {size}; the study's DA counts scale with it)")


def _trial(name: str, settings: dict, arm: dict) -> dict:
    """One validated trial config; a failure names the study and the arm."""
    try:
        return flat(TrialConfig(**settings, **arm))
    except (ValueError, TypeError) as e:
        label = arm["da"] if arm["da"] == "none" else f"{arm['da']}@{arm['n_aug']}"
        if "+" in arm["da"]:
            label += f" ratio {arm['pair_ratio']:g}"
        raise ValueError(f"study {name!r}, arm {label} on {settings.get('dataset')}: {e}") from None


def _settings(name: str, base: dict, overrides: dict, dataset: str) -> dict:
    """Preset settings + overrides for one dataset, checked once without an arm (so a global error names no arm).

    The dataset's PATH/ROOT is made absolute here, once: trials run in Tune's trial folders, not where the study was
    built.
    """
    try:
        dataset = resolve_source(dataset)
    except ValueError as e:
        raise ValueError(f"study {name!r}: {e}") from None
    settings = {**base, **{k: v for k, v in overrides.items() if k != "dataset"}, "dataset": dataset, "study": name}
    settings.setdefault("donor_steps", settings.get("steps", DEFAULTS["steps"]))
    try:
        TrialConfig(**settings)
    except (ValueError, TypeError) as e:
        raise ValueError(f"study {name!r} on {dataset}: {e}") from None
    _check_source(name, dataset, settings.get("n_real", DEFAULTS["n_real"]))
    return settings


def _metric(name: str, settings: dict) -> str:
    return metric_key(name, settings.get("extractor", DEFAULTS["extractor"]))


# ----------------------------------------------------------------------------------------------------------------------
# Builders


def grid_study(name: str, description: str, datasets: Sequence[dict], arms: Sequence[Arm], *, seeds: int = 1,
               overrides: dict | None = None, num_samples: int | None = None) -> GridStudy:
    """A grid study: every arm on every dataset (each a dict of settings with `dataset`), repeated for `seeds` seeds.

    Order: seed-major, then dataset, then arm, so the first pass gives one complete comparison. Seeds are
    base, base+1, ... with base = the `seed` override (default 0). Duplicate configs are dropped.
    """
    if num_samples is not None:
        raise ValueError(f"study {name!r} is a grid of fixed arms; num_samples applies to Optuna studies only")
    if seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds}")
    overrides = check_overrides(name, overrides)
    names = _datasets(name, [d["dataset"] for d in datasets], overrides.get("dataset"))
    per_dataset = [_settings(name, {**d, "dataset": ds}, overrides, ds) for d, ds in zip(datasets, names)]
    base_seed = per_dataset[0].get("seed", DEFAULTS["seed"])
    configs, seen = [], set()
    for k in range(seeds):
        for settings in per_dataset:
            settings = {**settings, "seed": base_seed + k}
            n_real = settings.get("n_real", DEFAULTS["n_real"])
            for arm in arms:
                config = _trial(name, settings, arm.resolve(n_real))
                key = tuple(sorted(config.items()))
                if key not in seen:
                    seen.add(key)
                    configs.append(config)
    return GridStudy(name=name, description=description, design=DA_DESIGN, configs=tuple(configs),
                     metric=_metric("fid", per_dataset[0]), mode="min")


def optuna_study(name: str, description: str, dataset: dict, *, seeds: int = 1, overrides: dict | None = None,
                 num_samples: int | None = None, search: dict | None = None) -> OptunaStudy:
    """An Optuna TPE study over `DASearch` (keyword args in `search`) on one dataset.

    Every point the define-by-run function can produce is validated here, so a trial can only fail in training.
    """
    if seeds != 1:
        raise ValueError(f"study {name!r} is an Optuna search (one seed per trial); --seeds applies to grid studies; "
                         "change the data/noise seed with a seed override")
    num_samples = 30 if num_samples is None else int(num_samples)
    if num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples}")
    overrides = check_overrides(name, overrides, what="chosen by the search")
    (ds,) = _datasets(name, [dataset["dataset"]], overrides.get("dataset"))
    settings = _settings(name, {**dataset, "dataset": ds}, overrides, ds)
    space = DASearch(n_real=settings.get("n_real", DEFAULTS["n_real"]), **(search or {}))
    for point in space.points():
        _trial(name, settings, point)
    constants = {k: v for k, v in flat(TrialConfig(**settings)).items() if k not in ARM_FIELDS or k == "study"}
    return OptunaStudy(name=name, description=description, design=DA_DESIGN, define_by_run=space,
                       constants=constants, num_samples=num_samples, metric=_metric("is_mean", settings), mode="max")


def _paper_description(where: str) -> str:
    return (f"The published DA ablation on 1000 real images ({where}): no DA; contrast, negpos, hflip, vflip and "
            "generated, each adding 1000 images; and the pairs of contrast, hflip and generated mixed 1:1 at 1000 "
            "and 2000 added images (12 arms). GPU-cluster settings: 64x64 DCGAN (the study's GAN architecture; "
            "--image-size 128 for its resolution), 20k steps at batch 64, Inception IS/FID/KID on 5000 samples "
            "every 1000 steps. Ranked by FID.")


def paper_celeba(**kw) -> GridStudy:
    return grid_study("paper-celeba", _paper_description("CelebA"), [{**GPU_SETTINGS, **CELEBA}], paper_arms(), **kw)


def paper_pomeranian(**kw) -> GridStudy:
    return grid_study("paper-pomeranian", _paper_description("Pomeranians; default folder:data/pomeranian"),
                      [{**GPU_SETTINGS, **POMERANIAN}], paper_arms(), **kw)


def paper(**kw) -> GridStudy:
    return grid_study("paper", _paper_description("CelebA and Pomeranians, 24 arms in all; override the datasets "
                                                  "with two --dataset values in that order"),
                      [{**GPU_SETTINGS, **CELEBA}, {**GPU_SETTINGS, **POMERANIAN}], paper_arms(), **kw)


def demo(**kw) -> GridStudy:
    return grid_study(
        "demo",
        "The paper's 12 arms scaled to the embedded LFW subset (100 faces, DA counts 100 and 200), 32x32, 300 steps, "
        "EfficientNet-Lite0 metrics on 100 samples: a few minutes on 2 CPU cores, no downloads. Ranked by FID.",
        [DEMO_SETTINGS], paper_arms(), **kw)


def ratios(**kw) -> GridStudy:
    return grid_study(
        "ratios",
        "Pairing ratios: each pair of contrast, hflip and generated with the first type's share at 0.25, 0.5 and "
        "0.75, adding 0.5x, 1x and 2x n_real images, plus no DA (28 arms; flips past n_real repeat base images). "
        "CelebA, GPU settings as paper-celeba. Ranked by FID.",
        [{**GPU_SETTINGS, **CELEBA, "allow_repeats": True}], ratio_arms(), **kw)


def optuna_da(**kw) -> OptunaStudy:
    return optuna_study(
        "optuna-da",
        "Optuna TPE over DA choices: none, each single type or any pair of the five types; for a pair, the first "
        "type's share (0.25-0.75); the DA count (0.5x, 1x, 2x n_real). 30 trials by default on CelebA, GPU "
        "settings as paper-celeba. Maximises IS (--metric fid_<extractor> --mode min to minimise FID).",
        {**GPU_SETTINGS, **CELEBA, "allow_repeats": True}, **kw)


# Registry: study name -> builder(seeds=1, overrides=None, num_samples=None) -> GridStudy | OptunaStudy.
STUDIES: dict[str, Callable[..., GridStudy | OptunaStudy]] = {
    "paper": paper,
    "paper-celeba": paper_celeba,
    "paper-pomeranian": paper_pomeranian,
    "demo": demo,
    "ratios": ratios,
    "optuna-da": optuna_da,
}


# Registry: study name -> its design (the same for every study-1 preset).
DESIGNS: dict[str, Design] = {name: DA_DESIGN for name in STUDIES}


def build_study(name: str, *, seeds: int = 1, overrides: dict | None = None,
                num_samples: int | None = None) -> GridStudy | OptunaStudy:
    """The validated study of a preset.

    `seeds`: repeat every arm with K seeds (grid studies). `overrides`: TrialConfig fields replacing the preset's
    settings (`dataset` takes one source per dataset of the study; `seed` is the base seed). `num_samples`: Optuna
    trials (Optuna studies only; default 30). Raises ValueError with one line on any problem.
    """
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; allowed: {', '.join(STUDIES)}")
    return STUDIES[name](seeds=seeds, overrides=overrides, num_samples=num_samples)


def design_of(name: str) -> Design:
    """The design of study `name` (what the report compares), without building the study."""
    if name not in DESIGNS:
        raise ValueError(f"unknown study {name!r}; allowed: {', '.join(STUDIES)}")
    return DESIGNS[name]


def arm_counts() -> dict[str, int]:
    """Trials per study at its defaults (one seed): the arms of a grid, num_samples of an Optuna search."""
    return {name: build_study(name).num_samples for name in STUDIES}


"""What every study preset is built with: override checks, settings validated once, the grid and Optuna builders.

`grid_study` crosses a study's arms with its datasets and seeds into complete, validated trial configs;
`optuna_study` validates every point a define-by-run space can produce. A bad study, override or count fails here
with one line, before Ray starts.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence

from gan.config import TrialConfig, flat
from gan.metrics.schema import metric_key
from gan.sources import parse_source, resolve_source
from search_spaces.space import DASearch, Design, GridStudy, OptunaStudy

FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialConfig))
DEFAULTS: dict = {f.name: f.default for f in dataclasses.fields(TrialConfig)}
DEFAULT_SEEDS = 3  # seeds per arm of a grid study unless --seeds says otherwise: seeds are the unit of replication
# Images in sources whose size is fixed and known without reading files (n_real beyond it can never be drawn).
EMBEDDED_SIZES = {"lfw-subset": 100, "skimage-photos": 277}


class Arm(Protocol):
    """One arm of a grid study: the config fields it sets given the study's settings, and its label for errors."""

    def resolve(self, settings: dict) -> dict: ...

    def label(self, settings: dict) -> str: ...


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


def check_overrides(name: str, overrides: dict | None, arm_fields: Sequence[str], *,
                    what: str = "set by each arm") -> dict:
    """Validate override keys (TrialConfig fields, not the study's `arm_fields`) and coerce string values. Returns a
    new dict. A None value means "not given" and is dropped, so a CLI can pass all its options through.
    """
    out = {}
    allowed = ", ".join(f for f in FIELDS if f not in arm_fields)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in DEFAULTS:
            raise ValueError(f"unknown setting {key!r}; allowed: {allowed}")
        if key in arm_fields:
            raise ValueError(f"{key} is {what} in study {name!r} and cannot be overridden; overridable: {allowed}")
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


def trial(name: str, settings: dict, fields: dict, label: str) -> dict:
    """One validated trial config; a failure names the study and the arm."""
    try:
        return flat(TrialConfig(**{**settings, **fields}))
    except (ValueError, TypeError) as e:
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


def metric_of(name: str, settings: dict) -> str:
    return metric_key(name, settings.get("extractor", DEFAULTS["extractor"]))


# ----------------------------------------------------------------------------------------------------------------------
# Builders


def grid_study(name: str, description: str, design: Design, datasets: Sequence[dict], arms: Sequence[Arm], *,
               metric: str = "kid_mean", mode: str = "min", arm_fields: Sequence[str] | None = None,
               seeds: int | None = None, overrides: dict | None = None, num_samples: int | None = None) -> GridStudy:
    """A grid study: every arm on every dataset (each a dict of settings with `dataset`), repeated for `seeds` seeds
    (default `DEFAULT_SEEDS`), ranked by `metric` (a schema name; the extractor is the settings').

    Order: seed-major, then dataset, then arm, so the first pass gives one complete comparison. Seeds are
    base, base+1, ... with base = the `seed` override (default 0). Duplicate configs are dropped. The fields the
    arms set (`arm_fields`, default the design's, plus `study`) cannot be overridden.
    """
    if num_samples is not None:
        raise ValueError(f"study {name!r} is a grid of fixed arms; num_samples applies to Optuna studies only")
    seeds = DEFAULT_SEEDS if seeds is None else seeds
    if seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds}")
    overrides = check_overrides(name, overrides, (*(arm_fields or design.arm_fields), "study"))
    names = _datasets(name, [d["dataset"] for d in datasets], overrides.get("dataset"))
    per_dataset = [_settings(name, {**d, "dataset": ds}, overrides, ds) for d, ds in zip(datasets, names)]
    base_seed = per_dataset[0].get("seed", DEFAULTS["seed"])
    configs, seen = [], set()
    for k in range(seeds):
        for settings in per_dataset:
            settings = {**settings, "seed": base_seed + k}
            for arm in arms:
                config = trial(name, settings, arm.resolve(settings), arm.label(settings))
                key = tuple(sorted(config.items()))
                if key not in seen:
                    seen.add(key)
                    configs.append(config)
    design.check(name, configs)  # the primary hypotheses resolve on these arms
    return GridStudy(name=name, description=description, design=design, configs=tuple(configs),
                     metric=metric_of(metric, per_dataset[0]), mode=mode)


def optuna_study(name: str, description: str, design: Design, dataset: dict, *, metric: str = "kid_mean",
                 mode: str = "min", seeds: int | None = None, overrides: dict | None = None,
                 num_samples: int | None = None, search: dict | None = None) -> OptunaStudy:
    """An Optuna TPE study over `DASearch` (keyword args in `search`) on one dataset.

    Every point the define-by-run function can produce is validated here, so a trial can only fail in training.
    """
    if seeds not in (None, 1):
        raise ValueError(f"study {name!r} is an Optuna search (one seed per trial); --seeds applies to grid studies; "
                         "change the data/noise seed with a seed override")
    num_samples = 30 if num_samples is None else int(num_samples)
    if num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples}")
    overrides = check_overrides(name, overrides, (*design.arm_fields, "study"), what="chosen by the search")
    (ds,) = _datasets(name, [dataset["dataset"]], overrides.get("dataset"))
    settings = _settings(name, {**dataset, "dataset": ds}, overrides, ds)
    space = DASearch(n_real=settings.get("n_real", DEFAULTS["n_real"]), **(search or {}))
    for point in space.points():
        trial(name, settings, point, point["da"])
    constants = {k: v for k, v in flat(TrialConfig(**settings)).items() if k not in design.arm_fields}
    design.check(name, [{**constants, **point} for point in space.points()])
    return OptunaStudy(name=name, description=description, design=design, define_by_run=space,
                       constants=constants, num_samples=num_samples, metric=metric_of(metric, settings), mode=mode)



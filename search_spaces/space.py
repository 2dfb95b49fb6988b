"""What a study hands to Ray Tune: `StudySpace`, the Optuna define-by-run space `DASearch`, and `sample_configs`.

Two kinds of study:

* **grid**: a fixed list of complete, flat trial configs (`TrialConfig(**config)` works on each). The arms of an
  ablation are a union (singles at one count, pairs at two counts, a baseline), not a Cartesian product, so they go
  to Tune as `BasicVariantGenerator(points_to_evaluate=configs)` with `num_samples=len(configs)`: one trial per
  point, exactly that config. `param_space()` names every key of the points (Tune requires it), with a
  `tune.choice` over the values a key takes and the plain value for keys that never vary.
* **optuna**: a define-by-run function (`DASearch`) that Optuna's TPE samples from, plus the fixed `constants`.
  `param_space()` is the constants (Tune merges each suggestion into them); `search_alg()` is `OptunaSearch`.

Ray and Optuna are imported only inside the methods that need them, so listing studies stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

from gan.augment import AUGMENTATIONS
from gan.augment import da_label
from gan.config import TrialConfig


def as_config(cfg: TrialConfig) -> dict:
    """A TrialConfig as the flat dict a trial receives: every field, `da` as its '+'-joined label or 'none'."""
    config = dataclasses.asdict(cfg)
    config["da"] = da_label(cfg.da)
    return config


@dataclass(frozen=True)
class StudySpace:
    """A study ready for Ray Tune: either `configs` (grid) or `define_by_run` + `constants` (optuna)."""

    name: str  # key of search_spaces.STUDIES
    description: str  # one paragraph for `gansweep studies`
    configs: tuple[dict, ...] | None  # grid: every trial's complete TrialConfig kwargs, in run order
    define_by_run: Callable | None  # optuna: fn(optuna.Trial) -> dict of constants (a DASearch)
    constants: dict  # optuna: the fixed TrialConfig kwargs; grid: the keys shared by every config
    num_samples: int  # grid: len(configs); optuna: number of trials
    metric: str  # default metric to rank (grid) or optimise (optuna), e.g. 'fid_effnet', 'is_mean_effnet'
    mode: str  # 'min' or 'max'

    @property
    def kind(self) -> str:
        """'grid' or 'optuna'."""
        return "grid" if self.configs is not None else "optuna"

    def param_space(self) -> dict:
        """What `tune.Tuner(param_space=...)` gets.

        Grid: every key of the configs; a key that varies gets `tune.choice(sorted values)` (its domain, so Tune's
        preset check sees each point as valid), a key that never varies its value. Optuna: the constants.
        """
        if self.configs is None:
            return dict(self.constants)
        from ray import tune

        space = {}
        for key in self.configs[0]:
            values = sorted({c[key] for c in self.configs})
            space[key] = values[0] if len(values) == 1 else tune.choice(values)
        return space

    def search_alg(self, metric: str | None = None, mode: str | None = None, seed: int = 0):
        """The Tune search algorithm.

        Grid: `BasicVariantGenerator(points_to_evaluate=configs)` (metric and mode are for ranking only). Optuna:
        `OptunaSearch` over `define_by_run`, optimising `metric` (default `self.metric`) in `mode`, with a
        `TPESampler(seed=seed)` so the same seed proposes the same first trials.
        """
        if self.configs is not None:
            from ray.tune.search.basic_variant import BasicVariantGenerator

            return BasicVariantGenerator(points_to_evaluate=[dict(c) for c in self.configs])
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        mode = mode or self.mode
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        return OptunaSearch(space=self.define_by_run, metric=metric or self.metric, mode=mode,
                            sampler=optuna.samplers.TPESampler(seed=seed))

    def trials_per_dataset(self) -> dict[str, int]:
        """How many trials each dataset gets (optuna: all of num_samples on its one dataset)."""
        if self.configs is None:
            return {self.constants["dataset"]: self.num_samples}
        return dict(Counter(c["dataset"] for c in self.configs))


# ----------------------------------------------------------------------------------------------------------------------
# Optuna: the define-by-run DA space


def da_choices(types=tuple(AUGMENTATIONS)) -> tuple[str, ...]:
    """'none', each single type, then each unordered pair ('contrast+hflip'), in registry order."""
    return ("none", *types, *("+".join(p) for p in itertools.combinations(types, 2)))


@dataclass(frozen=True)
class DASearch:
    """Define-by-run space over DA type, pairing ratio and DA count, for OptunaSearch.

    `da` is a categorical over `da_choices(types)`. Only when DA is used is `n_aug` suggested (a categorical over
    `count_multiples` x n_real), and only when a pair is chosen is `pair_ratio` suggested (the first type's share,
    `ratio_low`..`ratio_high` in steps of `ratio_step`; pairs are unordered, so a range symmetric about 0.5 covers
    both orders). The values a branch does not suggest come back as constants (`n_aug=0` for none, `pair_ratio=0.5`
    for a single type), so every suggestion is a complete set of arm fields. Suggested names are TrialConfig
    fields, because OptunaSearch puts every suggested value into the trial's config. No computation happens here.
    """

    n_real: int  # real images per trial: the DA counts are multiples of it
    types: tuple[str, ...] = tuple(AUGMENTATIONS)  # DA types to search over (singles and their pairs)
    count_multiples: tuple[float, ...] = (0.5, 1.0, 2.0)  # DA count choices, as multiples of n_real
    ratio_low: float = 0.25  # smallest share of the pair's first type (1:3)
    ratio_high: float = 0.75  # largest share (3:1)
    ratio_step: float = 0.125  # exact in binary, so suggested ratios are exactly 0.25, 0.375, ...

    @property
    def counts(self) -> tuple[int, ...]:
        """The DA counts (n_aug) on offer."""
        return tuple(int(m * self.n_real + 0.5) for m in self.count_multiples)

    @property
    def ratios(self) -> tuple[float, ...]:
        """Every pair_ratio the float suggestion can return."""
        n = int(round((self.ratio_high - self.ratio_low) / self.ratio_step))
        return tuple(self.ratio_low + k * self.ratio_step for k in range(n + 1))

    def __call__(self, trial) -> dict:
        da = trial.suggest_categorical("da", da_choices(self.types))
        if da == "none":
            return {"n_aug": 0, "pair_ratio": 0.5}
        trial.suggest_categorical("n_aug", self.counts)
        if "+" in da:
            trial.suggest_float("pair_ratio", self.ratio_low, self.ratio_high, step=self.ratio_step)
            return {}
        return {"pair_ratio": 0.5}

    def points(self) -> Iterator[dict]:
        """Every (da, n_aug, pair_ratio) the function can produce: what build-time validation checks."""
        for da in da_choices(self.types):
            if da == "none":
                yield {"da": "none", "n_aug": 0, "pair_ratio": 0.5}
                continue
            for n_aug in self.counts:
                for ratio in self.ratios if "+" in da else (0.5,):
                    yield {"da": da, "n_aug": n_aug, "pair_ratio": ratio}


@contextlib.contextmanager
def _quiet_optuna():
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield optuna
    finally:
        optuna.logging.set_verbosity(level)


def sample_configs(space: StudySpace, n: int, seed: int = 0) -> list[dict]:
    """Up to `n` complete trial configs of a study, for a dry run.

    Grid: the first `n` configs in run order. Optuna: `n` draws from the define-by-run space with Optuna's
    RandomSampler(seed) on an in-memory study, merged with the constants exactly as OptunaSearch merges them. Each
    is validated by constructing TrialConfig.
    """
    if space.configs is not None:
        return [dict(c) for c in space.configs[:n]]
    with _quiet_optuna() as optuna:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        out = []
        for _ in range(n):
            trial = study.ask()
            fixed = space.define_by_run(trial) or {}
            config = {**space.constants, **trial.params, **fixed}
            out.append(as_config(TrialConfig(**config)))
    return out


def possible_configs(space: StudySpace) -> list[dict]:
    """Every config a study can run: a grid's configs, or each point of an Optuna space merged with the constants.

    For the driver's preparation (which real sets, how many donor samples at most), where a random sample could
    miss the extreme (e.g. `generated` at 2x n_real).
    """
    if space.configs is not None:
        return [dict(c) for c in space.configs]
    return [as_config(TrialConfig(**{**space.constants, **point})) for point in space.define_by_run.points()]

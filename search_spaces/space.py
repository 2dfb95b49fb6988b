"""What a study hands to Ray Tune, and how its arms compare: `Design`, `GridStudy`, `OptunaStudy` and `DASearch`.

Two kinds of study with one interface (`name`, `description`, `design`, `metric`, `mode`, `num_samples`,
`constants`, `param_space()`, `search_alg()`, `possible_configs()`, `preview()`, `restrict()`):

* `GridStudy`: a fixed list of complete, flat trial configs (`TrialConfig(**config)` works on each). The arms of an
  ablation are a union (singles at one count, pairs at two counts, a baseline), not a Cartesian product, so they go
  to Tune as `BasicVariantGenerator(points_to_evaluate=configs)` with `num_samples=len(configs)`: one trial per
  point, exactly that config. `param_space()` names every key of the points (Tune requires it), with a
  `tune.choice` over the values a key takes and the plain value for keys that never vary.
* `OptunaStudy`: a define-by-run function (`DASearch`) that Optuna's TPE samples from, plus the fixed `constants`.
  `param_space()` is the constants (Tune merges each suggestion into them); `search_alg()` is `OptunaSearch`.

Every study declares its `Design`: which config fields make an arm, how arms are grouped for ranking and testing,
the baseline arm each group is compared with, and its primary hypotheses (`Hypothesis`), checked against the
study's configs when it is built. The report reads the design and names no study's fields.

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
from gan.config import TrialConfig, flat
from gan.metrics.schema import direction, known
from search_spaces.hypothesis import ALTERNATIVES, Hypothesis, fields_text


@dataclass(frozen=True)
class Design:
    """How a study's arms compare.

    Two trials belong to the same arm when they agree on every config field but the seed; seeds are replicates.
    An arm's baseline is the trial of arm `baseline` with the same seed and the same values of every field not in
    `arm_fields` (so a baseline is only ever compared with arms trained on the same data, size, budget, ...).
    `primaries` are the hypotheses the study is run to answer; every other comparison is exploratory.
    """

    arm_fields: tuple[str, ...]  # config fields that tell arms apart (study 1: da, n_aug, pair_ratio)
    group_by: tuple[str, ...]  # arms are ranked, plotted and Holm-corrected within groups of these fields
    baseline: str  # the arm label (TrialConfig.arm) every other arm is compared with (study 1: 'none')
    # (arms, text): what a reader of the scores must know when the sweep has any of those arms (no arms: always);
    # the report prints each once, beside the reference
    notes: tuple[tuple[tuple[str, ...], str], ...] = ()
    primaries: tuple[Hypothesis, ...] = ()  # the primary hypotheses, declared before anything runs

    def context(self, config: dict) -> tuple:
        """What an arm's trials must share with their baseline: every field but the arm fields and the seed."""
        return tuple(sorted((k, repr(v)) for k, v in config.items() if k not in self.arm_fields and k != "seed"))

    def group(self, config: dict) -> tuple:
        """The values of `group_by` for a config (missing fields as None)."""
        return tuple(config.get(k) for k in self.group_by)

    def title(self, key: tuple) -> str | None:
        """A group's title in words (`key`: its `group_by` values), where a study's design says one (a subclass);
        None: the report spells out the values."""
        return None

    def notes_for(self, arms) -> list[str]:
        """The notes that concern any of `arms` (the arm labels a sweep has)."""
        arms = set(arms)
        return [text for about, text in self.notes if not about or arms & set(about)]

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(dataclasses.replace(self, primaries=())),
                "primaries": [h.as_dict() for h in self.primaries]}

    def resolves(self, hypothesis: Hypothesis, configs) -> bool:
        """Whether `configs` hold an arm the hypothesis names, with its baseline in that arm's every context."""
        return _resolve_error(self, hypothesis, list(configs)) is None

    def check(self, study: str, configs) -> None:
        """Validate the primaries against the configs a study can run: unique names, arm fields of this design, a
        known direction, an arm that exists with its baseline in every context it runs in, and a metric key the
        schema knows for every extractor the configs use. ValueError with one line otherwise."""
        configs = list(configs)
        names = [h.name for h in self.primaries]
        if len(set(names)) != len(names):
            raise ValueError(f"study {study!r}: primary hypothesis names must be unique, got {', '.join(names)}")
        for h in self.primaries:
            where = f"study {study!r}, primary hypothesis {h.name!r}"
            unknown = [k for k, _ in (*h.arm, *h.baseline) if k not in self.arm_fields]
            if unknown:
                raise ValueError(f"{where}: {unknown[0]!r} is not an arm field; allowed: {', '.join(self.arm_fields)}")
            if h.direction not in ALTERNATIVES:
                raise ValueError(f"{where}: direction {h.direction!r} is unknown; allowed: {', '.join(ALTERNATIVES)}")
            error = _resolve_error(self, h, configs)
            if error:
                raise ValueError(f"{where}: {error}")
            for ext in sorted({c.get("extractor") for c in configs if h.matches(c)}):
                for key in (h.metric(ext), *(f(ext) for f in (h.expected, h.measurable) if f)):
                    if not known(key):
                        raise ValueError(f"{where}: metric {key!r} is not a key of gan.metrics.schema")

    def keep_resolving(self, configs) -> "Design":
        """The design with only the primaries `configs` still resolve (a study restricted to some of its arms)."""
        configs = list(configs)
        return dataclasses.replace(self, primaries=tuple(h for h in self.primaries if self.resolves(h, configs)))


def _resolve_error(design: Design, h: Hypothesis, configs: list[dict]) -> str | None:
    """Why `h` does not resolve on `configs` (None when it does)."""
    arms = [c for c in configs if h.matches(c)]
    if not arms:
        labels = ", ".join(dict.fromkeys(TrialConfig(**c).arm for c in configs))
        return f"no arm has {fields_text(h.arm)}; the study's arms: {labels}"
    bases = {design.context(c) for c in configs if h.is_baseline(c)}
    lost = [c for c in arms if design.context(c) not in bases]
    if lost:
        return (f"arm {TrialConfig(**lost[0]).arm} has no baseline {fields_text(h.baseline)} trained in the same "
                "context (data, size, budget)")
    return None


def _check_metric_mode(metric: str, mode: str) -> None:
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    direction(metric)  # an unknown key raises, listing the known ones


@dataclass(frozen=True)
class GridStudy:
    """A study of fixed trial configs, run in order."""

    name: str  # key of search_spaces.STUDIES
    description: str  # one paragraph for `gansweep studies`
    design: Design  # how the arms compare
    configs: tuple[dict, ...]  # every trial's complete TrialConfig kwargs, in run order
    metric: str  # default metric to rank by, a key of gan.metrics.schema
    mode: str  # 'min' or 'max'
    kind = "grid"
    sampled = False  # `planned` is every trial (an Optuna study's is a sample of its space)


    @property
    def num_samples(self) -> int:
        return len(self.configs)

    @property
    def constants(self) -> dict:
        """The config values every trial shares."""
        first = self.configs[0]
        return {k: v for k, v in first.items() if all(c[k] == v for c in self.configs)}

    def param_space(self) -> dict:
        """Every key of the configs; a key that varies gets `tune.choice(sorted values)` (its domain, so Tune's
        preset check sees each point as valid), a key that never varies its value."""
        from ray import tune

        space = {}
        for key in self.configs[0]:
            values = sorted({c[key] for c in self.configs})
            space[key] = values[0] if len(values) == 1 else tune.choice(values)
        return space

    def search_alg(self, metric: str | None = None, mode: str | None = None, seed: int = 0):
        """`BasicVariantGenerator(points_to_evaluate=configs)`: every point once (metric and mode rank only)."""
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(points_to_evaluate=[dict(c) for c in self.configs])

    def possible_configs(self) -> list[dict]:
        """Every config the study can run (what the driver prepares inputs for)."""
        return [dict(c) for c in self.configs]

    def preview(self, n: int | None = None, seed: int = 0) -> list[dict]:
        """The first `n` configs in run order (all by default), for a dry run."""
        return [dict(c) for c in self.configs[:n]]

    def planned(self) -> list[dict]:
        """The configs a resolved plan holds (and a dry run prints): every trial, in run order."""
        return self.preview()

    def suggest(self, metric: str, mode: str, seed: int = 0) -> Iterator[tuple[dict, Callable]]:
        """(config, tell) per trial, for running trials one after another without Tune; `tell(last_result or None)`
        reports how a trial did (a grid does not listen)."""
        for config in self.configs:
            yield dict(config), lambda last: None

    def arms(self) -> list[str]:
        """The arm labels, in run order."""
        return list(dict.fromkeys(TrialConfig(**c).arm for c in self.configs))

    def restrict(self, only: list[str]) -> "GridStudy":
        """The study with only the arms named in `only` (labels as `gansweep run --dry-run` prints them)."""
        labels = self.arms()
        unknown = [a for a in only if a not in labels]
        if unknown:
            raise ValueError(f"unknown arm {unknown[0]!r} in study {self.name}; allowed: {', '.join(labels)}")
        kept = tuple(c for c in self.configs if TrialConfig(**c).arm in only)
        return dataclasses.replace(self, configs=kept, design=self.design.keep_resolving(kept))

    def trials_per_dataset(self) -> dict[str, int]:
        return dict(Counter(c["dataset"] for c in self.configs))


@dataclass(frozen=True)
class OptunaStudy:
    """A study whose trials Optuna's TPE proposes from a define-by-run space."""

    name: str
    description: str
    design: Design
    define_by_run: "DASearch"  # fn(optuna.Trial) -> dict of the constants its branch fixes
    constants: dict  # the fixed TrialConfig kwargs every trial shares
    num_samples: int  # number of trials
    metric: str  # default metric to optimise
    mode: str  # 'min' or 'max'
    kind = "optuna"
    sampled = True  # `planned` is a sample of the space (its trials are proposed while the sweep runs)
    PLANNED = 8  # sampled configs a plan holds: the space itself was validated point by point


    def param_space(self) -> dict:
        return dict(self.constants)

    def search_alg(self, metric: str | None = None, mode: str | None = None, seed: int = 0):
        """`OptunaSearch` over `define_by_run`, optimising `metric` (default `self.metric`) in `mode`, with a
        `TPESampler(seed=seed)` so the same seed proposes the same first trials."""
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        metric, mode = metric or self.metric, mode or self.mode
        _check_metric_mode(metric, mode)
        return OptunaSearch(space=self.define_by_run, metric=metric, mode=mode,
                            sampler=optuna.samplers.TPESampler(seed=seed))

    def suggest(self, metric: str, mode: str, seed: int = 0) -> Iterator[tuple[dict, Callable]]:
        """(config, tell) per trial, for running trials one after another without Tune: the searcher's suggestions
        merged into the constants as Tune merges them; `tell(last_result or None)` feeds the result back, so the
        same seed and the same results replay the same suggestions."""
        searcher = self.search_alg(metric, mode, seed)
        for i in range(self.num_samples):
            trial_id = f"optuna_{i:05d}"
            suggestion = searcher.suggest(trial_id)
            yield ({**self.constants, **suggestion},
                   lambda last, _id=trial_id: searcher.on_trial_complete(_id, last, error=last is None))

    def possible_configs(self) -> list[dict]:
        """Every point the define-by-run function can produce, merged with the constants: what the driver prepares
        inputs for (a random sample could miss an extreme, e.g. `generated` at 2x n_real)."""
        return [flat(TrialConfig(**{**self.constants, **point})) for point in self.define_by_run.points()]

    def preview(self, n: int | None = None, seed: int = 0) -> list[dict]:
        """`n` draws (default num_samples) from the space with Optuna's RandomSampler(seed) on an in-memory study,
        merged with the constants exactly as OptunaSearch merges them, each validated by TrialConfig."""
        n = self.num_samples if n is None else n
        with _quiet_optuna() as optuna:
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
            out = []
            for _ in range(n):
                trial = study.ask()
                fixed = self.define_by_run(trial) or {}
                out.append(flat(TrialConfig(**{**self.constants, **trial.params, **fixed})))
        return out

    def planned(self) -> list[dict]:
        """The configs a resolved plan holds (and a dry run prints): a few sampled points stand for the space."""
        return self.preview(min(self.num_samples, self.PLANNED))

    def importances(self, results: list[tuple[dict, float]], mode: str | None = None) -> dict[str, float]:
        """Optuna's hyperparameter importances (`optuna.importance.get_param_importances`, fANOVA seeded with 0) of
        a metric over the searched fields, from finished trials' (flat config, value), which are replayed into an
        in-memory study through `define_by_run` (its suggested names are TrialConfig fields). A field some trials
        do not suggest (`n_aug` without DA) is left out, as Optuna does; {} with under two distinct values."""
        results = [(c, float(v)) for c, v in results if v == v]  # NaN: no value to explain
        if len({v for _, v in results}) < 2:
            return {}
        with _quiet_optuna() as optuna:
            study = optuna.create_study(direction="maximize" if (mode or self.mode) == "max" else "minimize")
            for config, value in results:
                study.enqueue_trial(config)
                trial = study.ask()
                try:
                    self.define_by_run(trial)  # Optuna refuses an enqueued value outside a choice
                    if any(config.get(k) != v for k, v in trial.params.items()):
                        raise ValueError("a suggestion differs from it")
                except ValueError as e:
                    raise ValueError(f"trial config {config} is not a point of {self.name}'s space ({e})") from e
                study.tell(trial, value)
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))

    def restrict(self, only: list[str]) -> "OptunaStudy":
        raise ValueError(f"--only picks arms of a grid study; {self.name} is an Optuna search")

    def trials_per_dataset(self) -> dict[str, int]:
        return {self.constants["dataset"]: self.num_samples}


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
    for a single type, `d_aug="none"`: the search is over dataset-level DA), so every suggestion is a complete set
    of arm fields. Suggested names are TrialConfig
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
            return {"n_aug": 0, "pair_ratio": 0.5, "d_aug": "none"}
        trial.suggest_categorical("n_aug", self.counts)
        if "+" in da:
            trial.suggest_float("pair_ratio", self.ratio_low, self.ratio_high, step=self.ratio_step)
            return {"d_aug": "none"}
        return {"pair_ratio": 0.5, "d_aug": "none"}

    def points(self) -> Iterator[dict]:
        """Every (da, n_aug, pair_ratio, d_aug) the function can produce: what build-time validation checks."""
        for da in da_choices(self.types):
            if da == "none":
                yield {"da": "none", "n_aug": 0, "pair_ratio": 0.5, "d_aug": "none"}
                continue
            for n_aug in self.counts:
                for ratio in self.ratios if "+" in da else (0.5,):
                    yield {"da": da, "n_aug": n_aug, "pair_ratio": ratio, "d_aug": "none"}


@contextlib.contextmanager
def _quiet_optuna():
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield optuna
    finally:
        optuna.logging.set_verbosity(level)

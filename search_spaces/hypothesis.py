"""A study's primary hypotheses: `Hypothesis`, declared by its `Design` before anything runs (`search_spaces.space`
checks each against the study's configs when it is built; `sweep.report.primaries` tests them)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from gan.config import TrialConfig

ALTERNATIVES = ("greater", "less", "two-sided")  # a hypothesis's direction: the arm above, below, or either side


@dataclass(frozen=True)
class Hypothesis:
    """A primary hypothesis, declared by a study's `Design` before anything runs: on `metric`, the arms matching
    `arm` differ from the baseline arms matching `baseline` (same context, paired by seed) in `direction`.

    Arms are named by their arm fields, not by labels, so one hypothesis resolves on every study of a design (vflip
    at any DA count, on every dataset): each (arm, context) it matches in a sweep is one primary test, and Holm's
    correction runs across the primary tests only.
    """

    name: str  # short id, unique within the design: the report's and the MLflow keys' name ('vflip-leaks')
    arm: tuple[tuple[str, object], ...]  # (arm field, value) pairs an arm must match, e.g. (("da", "vflip"),)
    baseline: tuple[tuple[str, object], ...]  # (arm field, value) pairs of the arm it is compared with
    metric: Callable[[str], str]  # extractor -> the metric key it is measured by (a key of gan.metrics.schema)
    direction: str  # 'greater' (the arm's value above the baseline's), 'less' or 'two-sided' (`ALTERNATIVES`)
    text: str  # the claim in words, as the report's answer opens with it ('vflip leaks')
    what: str = ""  # what the value counts, after the number ('of samples read as upside down')
    percent: bool = False  # the metric is a share: the answer shows it as a percentage
    expected: Callable[[str], str] | None = None  # extractor -> key of the value a generator that fits its training
    #                                              mixture would reach (shown beside the answer when reported)
    measurable: Callable[[str], str] | None = None  # extractor -> key that is 1 on a trial whose instrument can see
    #                                               the effect on its data (0: it cannot, and nothing is tested)

    def matches(self, config: dict) -> bool:
        """Whether a trial (its flat config; a field it leaves out has TrialConfig's default) belongs to an arm this
        hypothesis is about."""
        return all(_field(config, k) == v for k, v in self.arm)

    def is_baseline(self, config: dict) -> bool:
        return all(_field(config, k) == v for k, v in self.baseline)

    def as_dict(self) -> dict:
        """JSON-safe: the key functions as their repr."""
        return {"name": self.name, "arm": dict(self.arm), "baseline": dict(self.baseline),
                "metric": repr(self.metric), "direction": self.direction, "text": self.text,
                "expected": repr(self.expected) if self.expected else None,
                "measurable": repr(self.measurable) if self.measurable else None}


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrialConfig)}


def _field(config: dict, name: str):
    return config[name] if name in config else _DEFAULTS.get(name)


def fields_text(pairs) -> str:
    return ", ".join(f"{k}={v}" for k, v in pairs)

"""The study registry: every preset by name, with the design the report compares it by.

`build_study(name, seeds=, overrides=)` turns a preset into a `GridStudy` or `OptunaStudy` and validates every trial
config it can produce (`TrialConfig(**config)` runs every check), so a bad study, override or count fails with one
line before Ray starts. Study 1's presets live in `search_spaces.da`, study 2's in `search_spaces.highres`.
"""

from __future__ import annotations

from typing import Callable

from search_spaces.builders import EMBEDDED_SIZES  # noqa: F401  (re-exported: the tests check it against sources)
from search_spaces.da import DA_DESIGNS, DA_STUDIES
from search_spaces.highres import HIGHRES_DESIGN, HIGHRES_STUDIES
from search_spaces.space import Design, GridStudy, OptunaStudy

# Registry: study name -> builder(seeds=None, overrides=None, num_samples=None) -> GridStudy | OptunaStudy.
STUDIES: dict[str, Callable[..., GridStudy | OptunaStudy]] = {**DA_STUDIES, **HIGHRES_STUDIES}
# Registry: study name -> how its arms compare (read without building the study).
DESIGNS: dict[str, Design] = {**DA_DESIGNS,
                              **{n: HIGHRES_DESIGN for n in HIGHRES_STUDIES}}


def build_study(name: str, *, seeds: int | None = None, overrides: dict | None = None,
                num_samples: int | None = None) -> GridStudy | OptunaStudy:
    """The validated study of a preset.

    `seeds`: repeat every arm with K seeds (grid studies; default 3). `overrides`: TrialConfig fields replacing the
    preset's settings (`dataset` takes one source per dataset of the study; `seed` is the base seed).
    `num_samples`: Optuna trials (Optuna studies only; default 30). Raises ValueError with one line on any problem.
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
    """Trials per study at its defaults: seeds x arms of a grid, num_samples of an Optuna search."""
    return {name: build_study(name).num_samples for name in STUDIES}

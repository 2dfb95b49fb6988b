"""An Optuna study's hyperparameter importances (`OptunaStudy.importances`, Optuna's fANOVA): controls with known
answers. A metric that is a function of the DA count alone gives `n_aug` all the importance; one that follows the
DA type alone gives it to `da`."""

from __future__ import annotations

import pytest

from gan.config import TrialConfig, flat
from search_spaces import build_study


@pytest.fixture(scope="module")
def study_and_configs():
    study = build_study("optuna-da")
    points = [p for p in study.define_by_run.points() if p["da"] != "none"]  # every trial suggests da and n_aug
    return study, [flat(TrialConfig(**{**study.constants, **p})) for p in points[::6]]


def test_the_field_the_metric_follows_gets_the_importance(study_and_configs):
    study, configs = study_and_configs
    by_count = study.importances([(c, float(c["n_aug"])) for c in configs], "min")
    assert set(by_count) == {"da", "n_aug"} and by_count["n_aug"] > 0.9
    by_type = study.importances([(c, float(c["da"].count("+"))) for c in configs], "max")  # pairs vs singles
    assert by_type["da"] > 0.9


def test_no_spread_no_importances_and_a_foreign_config_is_refused(study_and_configs):
    study, configs = study_and_configs
    assert study.importances([(c, 1.0) for c in configs]) == {}
    assert study.importances([(configs[0], float("nan")), (configs[1], 2.0)]) == {}
    with pytest.raises(ValueError, match="not a point of optuna-da"):
        study.importances([({**configs[0], "n_aug": 7}, 1.0), (configs[1], 2.0)])

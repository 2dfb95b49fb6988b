"""Equal time on equal hardware: a budgeted trial's first iteration on a warm-up device runs outside its clock (once
per process and network set), budgeted sweeps on CPUs give each trial a whole node, and `iters_per_s` is a known
metric."""

import pytest
import ray

from gan import train
from gan.metrics import schema
from gan.methods import prepare_data
from gan.train import build_state, train_until
from sweep.execution import driver
from sweep.plan import Options
from tests.test_highres import CPU, fake_clock, photos, real, tiny  # noqa: F401 (fixtures)


def test_the_first_budgeted_iteration_on_a_warm_up_device_is_off_the_clock(real, fake_clock, monkeypatch):
    monkeypatch.setattr(train, "WARM_UP_DEVICES", ("cpu",))  # the CPU stands in for a GPU
    monkeypatch.setattr(train, "_warmed", set())
    cfg = tiny("dcgan32", steps=100, time_budget=5.5)
    state = build_state(cfg, CPU)
    train_until(state, prepare_data(real, cfg, CPU))
    assert (state.step, state.elapsed) == (7, 6.0)  # 1 warm-up + 6 on the clock (5.0 < 5.5 <= 6.0)
    again = build_state(cfg, CPU)  # the same network set in the same process: already tuned, no free iteration
    train_until(again, prepare_data(real, cfg, CPU))
    assert (again.step, again.elapsed) == (6, 6.0)
    sr = tiny("dcgan64+srcnn", steps=7, srcnn_steps=4, time_budget=5.5)  # its SRCNN and its GAN: one each
    state = build_state(sr, CPU)
    train_until(state, prepare_data(real, sr, CPU))
    assert (state.sr_step, state.step, state.sr_elapsed, state.elapsed) == (4, 4, 3.0, 6.0)  # 1 + 3 off + on


def test_without_a_budget_nothing_is_left_off_the_clock(real, fake_clock, monkeypatch):
    monkeypatch.setattr(train, "WARM_UP_DEVICES", ("cpu",))
    monkeypatch.setattr(train, "_warmed", set())
    cfg = tiny("dcgan32", steps=5)
    state = build_state(cfg, CPU)
    train_until(state, prepare_data(real, cfg, CPU))
    assert (state.step, state.elapsed) == (5, 5.0)


@pytest.mark.slow  # a Ray start: half a minute on a loaded 2-core machine
def test_budgeted_cpu_trials_take_a_whole_node():
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        assert driver.trial_resources(Options(), use_ray=True) == {"cpu": 1, "gpu": 0.0}
        assert driver.trial_resources(Options(), use_ray=True, budgeted=True) == {"cpu": 2.0, "gpu": 0.0}
        assert driver.trial_resources(Options(cpus_per_trial=1), use_ray=True, budgeted=True)["cpu"] == 1  # asked
    finally:
        ray.shutdown()


def test_iterations_per_second_is_a_known_unranked_metric():
    assert schema.known("iters_per_s") and schema.direction("iters_per_s") is None


@pytest.mark.parametrize("budget, title", [(0.0, "equal iterations"), (7200.0, "equal time (2 h)"),
                                           (90.0, "equal time (1.5 min)"), (12.0, "equal time (12 s)")])
def test_study_2_groups_are_titled_in_words(budget, title):
    from search_spaces.da import DA_DESIGN
    from search_spaces.highres import HIGHRES_DESIGN
    from sweep.report.tables import group_title

    assert group_title(HIGHRES_DESIGN, (budget,)) == title
    assert group_title(DA_DESIGN, ("lfw-subset", 64)) == "dataset=lfw-subset, n_aug=64"  # no words given: values

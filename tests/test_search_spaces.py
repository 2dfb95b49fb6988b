"""Study presets: exact arms, seeds, overrides, one-line errors, and configs reaching trials through real Ray Tune."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from gan.config import TrialConfig
from gan.sources import resolve_source
from search_spaces import STUDIES, arm_counts, build_study, da_choices
from search_spaces.studies import EMBEDDED_SIZES

FIELDS = {f.name for f in dataclasses.fields(TrialConfig)}
SINGLES = {"contrast", "negpos", "hflip", "vflip", "generated"}
PAIRS = {"contrast+hflip", "contrast+generated", "hflip+generated"}


def paper_arms(n: int) -> set[tuple]:
    """The study's arms on n real images, as (da, n_aug, pair_ratio)."""
    return ({("none", 0, 0.5)} | {(t, n, 0.5) for t in SINGLES}
            | {(p, c, 0.5) for p in PAIRS for c in (n, 2 * n)})


def arms(configs, dataset=None) -> set[tuple]:
    """The dataset-level arms (d_aug none) as (da, n_aug, pair_ratio)."""
    return {(c["da"], c["n_aug"], c["pair_ratio"]) for c in configs
            if dataset in (None, c["dataset"]) and c["d_aug"] == "none"}


def daug_arms(n: int) -> set[tuple]:
    """The arms with augmentation at D's input that the paper presets add, as (da, n_aug, d_aug)."""
    return {("none", 0, "diffaugment"), ("none", 0, "ada"), ("vflip", n, "ada"), ("vflip", n, "diffaugment")}


def one_line_error(match: str, **kw) -> str:
    with pytest.raises(ValueError, match=match) as e:
        build_study(**kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------------------------------------------------
# Arms


@pytest.mark.parametrize("name, dataset, n_real, n_heldout", [("paper-celeba", "celeba:data/celeba", 1000, 5000),
                                                              ("paper-pomeranian", "folder:data/pomeranian", 800, 200)])
def test_paper_study_has_exactly_the_published_arms(name, dataset, n_real, n_heldout):
    """Every preset holds a reference out: a 1000-image Pomeranian folder trains 800 and holds 200 out, its DA counts
    scaling with n_real (800, 1600)."""
    dataset = resolve_source(dataset)  # relative roots are made absolute once, where the study is built
    space = build_study(name)
    assert space.kind == "grid" and space.num_samples == len(space.configs) == 16 * 3  # 3 seeds by default
    assert arms(space.configs) == paper_arms(n_real)
    assert {(c["da"], c["n_aug"], c["d_aug"]) for c in space.configs if c["d_aug"] != "none"} == daug_arms(n_real)
    assert {c["dataset"] for c in space.configs} == {dataset}
    assert {c["reference"] for c in space.configs} == {"heldout"}
    assert sorted({c["seed"] for c in space.configs}) == [0, 1, 2]
    c = space.configs[0]
    assert (c["n_real"], c["n_heldout"], c["image_size"], c["extractor"], c["study"]) == (n_real, n_heldout, 64,
                                                                                            "inception", name)
    assert c["donor_steps"] == c["steps"]
    assert (space.metric, space.mode) == ("kid_mean_inception", "min")


def test_paper_is_the_union_of_both_datasets():
    space = build_study("paper", seeds=1)
    assert space.num_samples == 32
    assert space.trials_per_dataset() == {resolve_source("celeba:data/celeba"): 16,
                                          resolve_source("folder:data/pomeranian"): 16}
    for name in ("paper-celeba", "paper-pomeranian"):
        single = build_study(name, seeds=1)
        ds = single.configs[0]["dataset"]
        assert arms(space.configs, ds) == arms(single.configs)
        strip = [{k: v for k, v in c.items() if k != "study"} for c in space.configs if c["dataset"] == ds]
        assert strip == [{k: v for k, v in c.items() if k != "study"} for c in single.configs]


def test_demo_grid_is_the_paper_scaled_to_lfw_subset():
    space = build_study("demo-grid")
    assert arms(space.configs) == paper_arms(64) and space.num_samples == 36
    c = space.configs[0]
    assert (c["dataset"], c["n_real"], c["n_heldout"], c["image_size"], c["extractor"]) == ("lfw-subset", 64, 36, 32,
                                                                                          "effnet")
    assert c["n_real"] + c["n_heldout"] == 100  # every embedded face: training ones and the held-out reference
    assert (c["steps"], c["eval_every"], c["donor_steps"]) == (300, 300, 300)
    assert space.metric == "kid_mean_effnet"


def test_demo_spends_its_budget_on_the_leakage_arms_and_seeds():
    space = build_study("demo")
    assert arms(space.configs) == {("none", 0, 0.5), ("vflip", 64, 0.5), ("negpos", 64, 0.5)}
    assert sorted({c["seed"] for c in space.configs}) == list(range(6)) and space.num_samples == 18
    c = space.configs[0]
    assert (c["dataset"], c["n_real"], c["n_heldout"], c["image_size"]) == ("lfw-subset", 64, 36, 32)
    assert c["steps"] // c["eval_every"] >= 3  # at least three evaluations: curves in MLflow
    assert build_study("demo", seeds=2).num_samples == 6


@pytest.mark.parametrize("name", ["paper-highres", "demo-highres"])
def test_highres_is_every_method_under_both_budgets(name):
    from gan.methods import METHODS
    from search_spaces.highres import NO_CAP

    space = build_study(name, seeds=2)
    budget = space.configs[0]["time_budget"] or build_study(name).configs[-1]["time_budget"]
    steps = next(c["steps"] for c in space.configs if c["time_budget"] == 0)
    arms_ = {(c["method"], c["time_budget"], c["steps"]) for c in space.configs}
    # equal iterations: every method `steps` GAN iterations, no clock; equal time: the clock, never the step count
    assert arms_ == ({(m, 0.0, steps) for m in METHODS} | {(m, budget, NO_CAP) for m in METHODS})
    assert len(METHODS) == 5 and budget > 0 and space.num_samples == 2 * 10
    assert {c["seed"] for c in space.configs} == {0, 1}
    assert len({(c["method"], c["time_budget"], c["seed"]) for c in space.configs}) == 20
    assert all(c["image_size"] == 128 and c["da"] == "none" for c in space.configs)  # scored at 128, no DA
    assert space.design.baseline == "dcgan64" and space.design.group_by == ("time_budget",)
    if name == "paper-highres":  # the published settings: 4096 LFW faces, 6000 iterations, the SRCNN's 2000
        c = space.configs[0]
        assert (c["n_real"], steps, c["srcnn_steps"], c["extractor"]) == (4096, 6000, 2000, "inception")
        assert c["dataset"].startswith("lfw:")


def test_ratios_grid():
    space = build_study("ratios", seeds=1)
    expected = {("none", 0, 0.5)} | {(p, c, r) for p in PAIRS for c in (500, 1000, 2000) for r in (0.25, 0.5, 0.75)}
    assert arms(space.configs) == expected and space.num_samples == 28
    assert all(c["allow_repeats"] for c in space.configs)  # hflip at 0.75 x 2000 = 1500 > n_real


def test_every_config_of_every_study_is_complete_and_constructs_trialconfig():
    for name in STUDIES:
        space = build_study(name)
        for config in space.preview(50):
            assert set(config) == FIELDS
            assert config["study"] == name
            TrialConfig(**config)
    assert arm_counts() == {"paper": 96, "paper-celeba": 48, "paper-pomeranian": 48, "demo": 18, "demo-grid": 36,
                            "demo-daug": 36, "ratios": 84, "optuna-da": 30, "paper-highres": 30, "demo-highres": 30}


def test_every_study_declares_how_its_arms_compare():
    from search_spaces import DESIGNS, design_of

    assert set(DESIGNS) == set(STUDIES)
    for name in STUDIES:
        design = design_of(name)
        assert build_study(name).design == design
        assert design.baseline in {TrialConfig(**c).arm for c in build_study(name).possible_configs()}
        assert set(design.arm_fields) <= FIELDS and set(design.group_by) <= FIELDS
    d = design_of("demo-grid")
    assert (d.arm_fields, d.group_by, d.baseline) == (("da", "n_aug", "pair_ratio", "d_aug"), ("dataset", "n_aug"),
                                                      "none")
    with pytest.raises(ValueError, match="unknown study 'nope'; allowed: paper"):
        design_of("nope")


def test_optuna_suggestions_replay_when_told_the_same_results():
    """The in-process runner resumes an Optuna study by replaying its seeded suggestions with the same results."""
    space = build_study("optuna-da", num_samples=6, overrides={"dataset": "lfw-subset", "n_real": 100,
                                                               "extractor": "effnet"})

    def run(stop_after=None):
        seen = []
        for i, (config, tell) in enumerate(space.suggest("is_mean_effnet", "max", seed=4)):
            seen.append((config["da"], config["n_aug"], config["pair_ratio"]))
            tell({"is_mean_effnet": float(config["n_aug"]) / 100.0 + i})
        return seen

    first = run()
    assert len(first) == 6 and first == run()
    grid = build_study("demo-grid")
    assert [c for c, _ in grid.suggest("fid_effnet", "min")] == list(grid.configs)


# ----------------------------------------------------------------------------------------------------------------------
# Seeds and overrides


def test_seeds_repeat_every_arm():
    space = build_study("demo-grid", seeds=3)
    assert space.num_samples == 36
    for arm in arms(space.configs):
        assert sorted(c["seed"] for c in space.configs if arms([c]) == {arm}) == [0, 1, 2]
    assert [c["seed"] for c in space.configs[:12]] == [0] * 12  # seed-major: one full comparison first
    based = build_study("demo-grid", seeds=2, overrides={"seed": 10})
    assert sorted({c["seed"] for c in based.configs}) == [10, 11]


def test_overrides_apply_and_strings_are_coerced():
    space = build_study("paper-celeba", overrides={"steps": "500", "image_size": 32, "extractor": "effnet",
                                                   "dataset": "celeba:/abs/celeba", "eval_every": None})
    c = space.configs[0]
    assert (c["steps"], c["donor_steps"], c["image_size"], c["dataset"]) == (500, 500, 32, "celeba:/abs/celeba")
    assert c["eval_every"] == 1000  # None = not given
    assert space.metric == "kid_mean_effnet"
    assert arms(space.configs) == paper_arms(1000)
    assert build_study("demo-grid", overrides={"donor_steps": 50}).configs[0]["donor_steps"] == 50


def test_n_real_override_scales_the_counts():
    space = build_study("paper-celeba", overrides={"dataset": "lfw-subset", "n_real": 100, "n_heldout": 0})
    assert arms(space.configs) == paper_arms(100)


def test_multi_dataset_study_takes_one_dataset_per_dataset():
    space = build_study("paper", seeds=1, overrides={"dataset": ["celeba:/d/celeba", "folder:/d/pom"]})
    assert space.trials_per_dataset() == {"celeba:/d/celeba": 16, "folder:/d/pom": 16}
    one_line_error(r"runs 2 dataset\(s\).*give 2", name="paper", overrides={"dataset": "lfw-subset"})


# ----------------------------------------------------------------------------------------------------------------------
# Errors: one line, with what is allowed


def test_unknown_study_lists_the_valid_names():
    msg = one_line_error("unknown study 'nope'", name="nope")
    assert all(name in msg for name in STUDIES)


def test_unknown_override_lists_trialconfig_fields():
    msg = one_line_error("unknown setting 'stepz'", name="demo-grid", overrides={"stepz": 3})
    assert "steps" in msg and "image_size" in msg


def test_arm_fields_cannot_be_overridden():
    one_line_error("n_aug is set by each arm", name="demo-grid", overrides={"n_aug": 3})
    one_line_error("da is chosen by the search", name="optuna-da", overrides={"da": "hflip"})


def test_infeasible_dataset_override_is_one_clear_line():
    msg = one_line_error("paper-celeba.*lfw-subset has 100 images but n_real=1000", name="paper-celeba",
                         overrides={"dataset": "lfw-subset"})
    assert "override n_real" in msg


def test_infeasible_arm_names_study_and_arm():
    one_line_error(r"study 'ratios', arm contrast\+hflip@2000 ratio 0.25.*allow_repeats", name="ratios",
                   overrides={"allow_repeats": False})


def test_bad_values_are_one_line():
    one_line_error("image_size 48 is not supported; allowed: 32, 64, 128", name="demo-grid", overrides={"image_size": 48})
    one_line_error("override steps='x' is not a valid int", name="demo-grid", overrides={"steps": "x"})
    one_line_error("extractor 'clip' is unknown", name="demo-grid", overrides={"extractor": "clip"})
    one_line_error("seeds must be a positive integer", name="demo-grid", seeds=0)
    one_line_error("--seeds applies to grid studies", name="optuna-da", seeds=2)
    one_line_error("num_samples applies to Optuna studies only", name="demo-grid", num_samples=5)


def test_embedded_size_matches_the_source():
    from gan import sources

    src = sources.parse_source("lfw-subset")
    assert sources.SOURCES["lfw-subset"].open(src).size == EMBEDDED_SIZES["lfw-subset"]


# ----------------------------------------------------------------------------------------------------------------------
# Param space and search algorithms (no Ray session)


def test_grid_param_space_names_every_key():
    from ray.tune.search.sample import Categorical

    space = build_study("paper", seeds=2)
    ps = space.param_space()
    assert set(ps) == FIELDS
    varying = {k for k, v in ps.items() if isinstance(v, Categorical)}
    assert varying == {"dataset", "n_real", "n_heldout", "da", "n_aug", "d_aug", "seed"}  # CelebA 1000+5000, Pomeranian 800+200
    for config in space.configs:
        for k, v in config.items():
            assert ps[k].is_valid(v) if k in varying else ps[k] == v


def test_optuna_space_is_conditional_and_fully_validated():
    assert (build_study("optuna-da").metric, build_study("optuna-da").mode) == ("kid_mean_inception", "min")
    space = build_study("optuna-da", num_samples=12, overrides={"dataset": "lfw-subset", "n_real": 100,
                                                                "extractor": "effnet"})
    assert space.kind == "optuna" and space.num_samples == 12
    assert (space.metric, space.mode) == ("kid_mean_effnet", "min")
    assert space.param_space() == space.constants and "da" not in space.constants
    points = space.possible_configs()
    assert len(points) == 1 + 5 * 3 + 10 * 3 * 5  # none; singles x counts; pairs x counts x ratios
    assert all(set(p) == FIELDS for p in points)
    assert max(p["n_aug"] for p in points if p["da"] == "generated") == 200
    assert len(da_choices()) == 16
    configs = space.preview(40, seed=1)
    assert configs == space.preview(40, seed=1)  # seeded
    for c in configs:
        if c["da"] == "none":
            assert (c["n_aug"], c["pair_ratio"]) == (0, 0.5)
        elif "+" not in c["da"]:
            assert c["pair_ratio"] == 0.5 and c["n_aug"] in (50, 100, 200)
        else:
            assert c["pair_ratio"] in (0.25, 0.375, 0.5, 0.625, 0.75)
    assert len({c["pair_ratio"] for c in configs if "+" in c["da"]}) > 1
    alg = space.search_alg(metric="fid_effnet", mode="min", seed=3)
    assert (alg.metric, alg.mode) == ("fid_effnet", "min")


# ----------------------------------------------------------------------------------------------------------------------
# Through real Ray Tune: one Ray session for the module


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()  # reuse a session another module left open; only end our own
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _fit(space, tmp_path, trainable, **tune_kw):
    from ray import tune

    tuner = tune.Tuner(trainable, param_space=space.param_space(),
                       tune_config=tune.TuneConfig(search_alg=space.search_alg(), num_samples=space.num_samples,
                                                   **tune_kw),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name=space.name, verbose=0))
    return tuner.fit()


def test_grid_points_reach_trials_exactly_once(ray_session, tmp_path):
    from ray import tune

    full = build_study("demo-grid", seeds=2)
    # 4 points whose varying keys (da, n_aug, seed) all differ in some way.
    picked = (full.configs[0], full.configs[6], full.configs[11], full.configs[13])
    space = dataclasses.replace(full, configs=picked)

    def trainable(config):
        tune.report({"fid_effnet": float(config["n_aug"]), "config_echo": repr(sorted(config.items()))})

    handler = _Records()
    logger = logging.getLogger("ray.tune.search.variant_generator")
    logger.addHandler(handler)
    try:
        results = _fit(space, tmp_path, trainable)
    finally:
        logger.removeHandler(handler)
    assert not results.errors
    got = sorted(repr(sorted(r.config.items())) for r in results)
    assert got == sorted(repr(sorted(c.items())) for c in picked)
    assert [r.message for r in handler.records] == []


def test_optuna_search_runs_and_respects_the_condition(ray_session, tmp_path):
    from ray import tune

    space = build_study("optuna-da", num_samples=4, overrides={"dataset": "lfw-subset", "n_real": 100,
                                                               "extractor": "effnet"})

    def trainable(config):
        tune.report({"kid_mean_effnet": float(config["n_aug"]) / 100.0})

    results = _fit(space, tmp_path, trainable)
    assert not results.errors and len(results) == 4
    for r in results:
        c = r.config
        assert set(c) == FIELDS and c["study"] == "optuna-da"
        TrialConfig(**c)  # what the trainable will do
        if "+" not in c["da"]:
            assert c["pair_ratio"] == 0.5
        if c["da"] == "none":
            assert c["n_aug"] == 0

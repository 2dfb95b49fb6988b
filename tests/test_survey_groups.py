"""The survey per comparison group: a study-2-shaped fake sweep (three methods under two budget modes, the study's own
`HIGHRES_DESIGN`) and a study-1-shaped one (`DA_DESIGN`: the no-DA baseline offered beside both DA counts). Pairs
are never served across groups, `--group` picks groups, results are per group (against hand-computed Wilson
intervals and binomial p-values), the report's table and MLflow get them per group, and bad input is one line.

Every (method, budget) draws its samples in its own flat colour, so a test tells from the served pixels which
method *and group* an image came from.
"""

import ast
import collections
import io
import itertools
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from search_spaces.da import DA_DESIGN
from search_spaces.highres import HIGHRES_DESIGN, NO_CAP
from sweep.cli.survey import log_to_parent_run
from sweep.survey import REAL, create_app, pool_from_records, selection_rates, survey_results, votes_path
from sweep.survey.app import COOKIE
from sweep.survey.render import markdown, plot
from sweep.survey.stats import results_of_votes, selection_table
from gan import storage
from tests.test_survey_cli import fake_sweep_dir, run
from tests.test_survey_pool import COLOURS, trial, write_samples
from tests.test_survey_stats import binomial_p_by_hand, match, wilson_by_hand

METHODS = ("dcgan64", "dcgan64+srcnn", "stackgan128")
BUDGETS = (0.0, 12.0)
EQUAL_ITER, EQUAL_TIME = (("time_budget", 0.0),), (("time_budget", 12.0),)
SHADES = {  # (method, budget) -> colour of its samples
    ("dcgan64", 0.0): (200, 30, 30), ("dcgan64+srcnn", 0.0): (30, 30, 200), ("stackgan128", 0.0): (30, 160, 30),
    ("dcgan64", 12.0): (120, 20, 120), ("dcgan64+srcnn", 12.0): (20, 120, 120), ("stackgan128", 12.0): (120, 120, 20),
    REAL: COLOURS[REAL]}


def shade_of(png: bytes):
    rgb = tuple(int(c) for c in np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[-1, -1])
    return next(key for key, c in SHADES.items() if c == rgb)


def highres_sweep(root, fail=()):
    """Two seeds of every method under both budgets, as `paper-highres` names them; the (method, budget) pairs in
    `fail` failed (no samples). Returns (records, real table)."""
    records = []
    for budget, m, seed in itertools.product(BUDGETS, METHODS, (0, 1)):
        settings = dict(method=m, time_budget=budget, steps=60 if budget == 0 else NO_CAP)
        if (m, budget) in fail:
            records.append(trial(m, seed, "failed", **settings))
        else:
            path = write_samples(root / f"{m}-{budget}-{seed}.parquet", 3, SHADES[m, budget])
            records.append(trial(m, seed, samples=path, **settings))
    return records, write_samples(root / "real.parquet", 3, SHADES[REAL])


def da_sweep(root):
    """Study 1 in miniature: `none` (n_aug 0), hflip@100 and vflip@100, hflip@200, two seeds each, plus one `none`
    trial trained for longer (another context: compared with nothing here)."""
    colours = {"none": (200, 30, 30), "hflip@100": (30, 30, 200), "vflip@100": (30, 160, 30),
               "hflip@200": (120, 20, 120), "long none": (20, 120, 120)}
    records = []
    for arm, da, n_aug in [("none", "none", 0), ("hflip@100", "hflip", 100), ("vflip@100", "vflip", 100),
                           ("hflip@200", "hflip", 200)]:
        for seed in (0, 1):
            path = write_samples(root / f"{arm}-{seed}.parquet", 2, colours[arm])
            records.append(trial(arm, seed, samples=path, dataset="lfw-subset", da=da, n_aug=n_aug, pair_ratio=0.5,
                                 steps=10))
    long = write_samples(root / "long-none.parquet", 2, colours["long none"])
    records.append(trial("none", 5, samples=long, dataset="lfw-subset", da="none", n_aug=0, pair_ratio=0.5, steps=20))
    return records, colours


def participant(app):
    client = app.test_client()
    client.get("/")
    return client


def answer_all(client, n, choose=lambda shades: "left"):
    """Answer `n` pairs; returns [(token, left shade, right shade)] as served."""
    served = []
    for _ in range(n):
        pair = client.get("/api/next").get_json()
        shades = shade_of(client.get(pair["left"]).data), shade_of(client.get(pair["right"]).data)
        served.append((pair["token"], *shades))
        assert client.post("/api/vote", json={"token": pair["token"], "choice": choose(shades)}).status_code == 200
    return served


def rows(db, sql):
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


# --- which images each group offers ---------------------------------------------------------------------------------


def test_highres_groups_are_the_budget_modes(tmp_path):
    records, _ = highres_sweep(tmp_path)
    pool = pool_from_records(records, HIGHRES_DESIGN)
    assert pool.comparisons == {EQUAL_ITER: METHODS, EQUAL_TIME: METHODS} and pool.methods == METHODS
    assert len(pool) == 2 * 3 * 2 * 3  # budgets x methods x seeds x samples, each once
    for group, budget in ((EQUAL_ITER, 0.0), (EQUAL_TIME, 12.0)):
        for m in METHODS:  # every image a group offers for a method is that method's under that budget
            offered = {shade_of(pool.png(i)) for i in range(len(pool)) if pool.holds(group, m, pool.ref(i))}
            assert offered == {(m, budget)}


def test_da_baseline_is_offered_in_every_group_it_is_compared_with(tmp_path):
    records, _ = da_sweep(tmp_path)
    pool = pool_from_records(records, DA_DESIGN)
    at_100, at_200 = (("dataset", "lfw-subset"), ("n_aug", 100)), (("dataset", "lfw-subset"), ("n_aug", 200))
    assert pool.comparisons == {at_100: ("hflip@100", "none", "vflip@100"), at_200: ("hflip@200", "none")}
    baseline = [{i for i in range(len(pool)) if pool.holds(g, "none", pool.ref(i))} for g in (at_100, at_200)]
    assert baseline[0] == baseline[1] and len(baseline[0]) == 2 * 2  # the same 2 seeds x 2 images, one id each
    with pytest.raises(ValueError, match="^method 'hflip@200' is in none of the chosen comparison groups; methods "
                                         "with finished trials in dataset = lfw-subset, n_aug = 100: hflip@100, none"):
        pool_from_records(records, DA_DESIGN, methods=["hflip@100", "hflip@200"], groups=[("n_aug", "100")])
    with pytest.raises(ValueError, match=r"^comparison group dataset = lfw-subset, n_aug = 100 has 1 of the chosen "
                                         r"methods with finished trials \(hflip@100\): a survey compares two or more"):
        pool_from_records(records, DA_DESIGN, methods=["hflip@100", "hflip@200"], groups=[("dataset", "lfw-subset")])
    long = str((tmp_path / "long-none.parquet").resolve())
    assert all(pool.ref(i).table != long for i in range(len(pool)))  # another context: compared with nothing
    assert len(pool) == 4 * 2 * 2


# --- serving ----------------------------------------------------------------------------------------------------------


def test_pairs_never_cross_groups_and_are_balanced(tmp_path):
    records, _ = highres_sweep(tmp_path)
    db = tmp_path / "survey" / "votes.db"
    app = create_app(pool_from_records(records, HIGHRES_DESIGN), db, n_pairs=24, seed=0)
    counts = collections.Counter()
    for _ in range(2):
        served = answer_all(participant(app), 24)
        for token, (m1, b1), (m2, b2) in served:
            assert b1 == b2 and m1 != m2  # two methods of one budget, never across
            (stored,) = rows(db, f"SELECT comparison, left_method, right_method FROM pairs WHERE token = '{token}'")
            assert stored == (json.dumps({"time_budget": b1}), m1, m2)  # the database says what was shown
            counts[b1, frozenset((m1, m2))] += 1
    # 12 pairs per group and participant, each group's 3 method pairs 4 times each
    assert counts == {(b, frozenset(p)): 8 for b in BUDGETS for p in itertools.combinations(METHODS, 2)}


def test_real_photos_are_paired_within_a_group(tmp_path):
    records, real = highres_sweep(tmp_path)
    db = tmp_path / "survey" / "votes.db"
    app = create_app(pool_from_records(records, HIGHRES_DESIGN, real_table=real), db, n_pairs=12, real_share=0.5,
                     seed=2)
    served = answer_all(participant(app), 12)
    with_real = [(left, right) for _, left, right in served if REAL in (left, right)]
    shown = sorted(next(s for s in pair if s != REAL) for pair in with_real)
    assert shown == sorted(SHADES.keys() - {REAL})  # 6 real slots: every (method, budget) once
    groups = rows(db, "SELECT comparison, left_method, right_method FROM pairs WHERE 'real' IN (left_method, "
                      "right_method)")
    assert sorted((json.loads(g)["time_budget"], (lm if rm == REAL else rm)) for g, lm, rm in groups) == \
        sorted((b, m) for m, b in shown)


def test_group_option_surveys_one_group(tmp_path):
    records, _ = highres_sweep(tmp_path)
    pool = pool_from_records(records, HIGHRES_DESIGN, groups=[("time_budget", "12")])
    assert pool.comparisons == {EQUAL_TIME: METHODS}
    app = create_app(pool, tmp_path / "votes.db", n_pairs=6, seed=0)
    assert {b for _, (_, b), (_, b2) in answer_all(participant(app), 6) for b in (b, b2)} == {12.0}


def test_a_restart_on_another_group_replaces_the_pending_pair(tmp_path):
    records, _ = highres_sweep(tmp_path)
    db = tmp_path / "votes.db"
    first = create_app(pool_from_records(records, HIGHRES_DESIGN, groups=[("time_budget", "0")]), db, n_pairs=4)
    client = participant(first)
    stale = client.get("/api/next").get_json()
    again = create_app(pool_from_records(records, HIGHRES_DESIGN, groups=[("time_budget", "12")]), db,
                       n_pairs=4).test_client()
    again.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    fresh = again.get("/api/next").get_json()
    assert fresh["token"] != stale["token"]
    assert {shade_of(again.get(fresh[side]).data)[1] for side in ("left", "right")} == {12.0}


# --- results per group ------------------------------------------------------------------------------------------------


def published_votes():
    """The published study's shape: equal iterations 50/50 between A (stackgan128) and B (dcgan64+srcnn), equal time
    22.7/77.3 (17 of 75). Equal iterations also has dcgan64, so its three pairs are one Holm family."""
    votes = []
    for p in ("p1", "p2", "p3"):
        votes += match(p, "stackgan128", "dcgan64+srcnn", 5, 5, group=EQUAL_ITER)
        votes += match(p, "dcgan64", "stackgan128", 2, 8, 1 if p == "p1" else 0, group=EQUAL_ITER)
        votes += match(p, "dcgan64", "dcgan64+srcnn", 3, 7, group=EQUAL_ITER)
    votes += match("p1", "stackgan128", "dcgan64+srcnn", 9, 21, group=EQUAL_TIME)
    votes += match("p4", "stackgan128", "dcgan64+srcnn", 8, 37, 2, group=EQUAL_TIME)
    return votes


def test_results_per_group_by_hand():
    res = results_of_votes(published_votes(), n_boot=100)
    assert [g.group for g in res.groups] == [EQUAL_ITER, EQUAL_TIME] and res.group_by == ("time_budget",)
    assert (res.participants, res.votes, res.cant_tell) == (4, 90 + 1 + 77, 3)
    same_iter, same_time = res.group(time_budget=0.0), res.group(time_budget=12)
    assert (same_iter.participants, same_iter.votes, same_time.participants, same_time.votes) == (3, 91, 2, 77)

    expected = {(EQUAL_ITER, "stackgan128"): (15 + 24, 60), (EQUAL_ITER, "dcgan64+srcnn"): (15 + 21, 60),
                (EQUAL_ITER, "dcgan64"): (6 + 9, 60), (EQUAL_TIME, "stackgan128"): (17, 75),
                (EQUAL_TIME, "dcgan64+srcnn"): (58, 75)}
    for g in res.groups:
        for m in g.methods:
            k, n = expected[g.group, m.method]
            assert (m.selection.k, m.selection.n) == (k, n)
            assert (m.selection.low, m.selection.high) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)
    assert f"{100 * 17 / 75:.1f}" == "22.7" and f"{100 * 58 / 75:.1f}" == "77.3"  # the published figures

    # Holm within equal iterations (3 pairs), none across groups: equal time's one pair keeps its own p.
    pairs = {(g.group, p.a, p.b): p for g in res.groups for p in g.pairs}
    p_time = binomial_p_by_hand(17, 75)
    assert pairs[EQUAL_TIME, "dcgan64+srcnn", "stackgan128"].p == pytest.approx(p_time, rel=1e-12)
    assert pairs[EQUAL_TIME, "dcgan64+srcnn", "stackgan128"].p_holm == pytest.approx(p_time, rel=1e-12)
    p_a_b, p_64_a, p_64_b = binomial_p_by_hand(15, 30), binomial_p_by_hand(6, 30), binomial_p_by_hand(9, 30)
    assert p_64_a < p_64_b < p_a_b
    assert pairs[EQUAL_ITER, "dcgan64", "stackgan128"].p_holm == pytest.approx(3 * p_64_a, rel=1e-12)
    assert pairs[EQUAL_ITER, "dcgan64", "dcgan64+srcnn"].p_holm == pytest.approx(max(3 * p_64_a, 2 * p_64_b),
                                                                                 rel=1e-12)
    assert pairs[EQUAL_ITER, "dcgan64+srcnn", "stackgan128"].p_holm == pytest.approx(1.0)
    assert pairs[EQUAL_ITER, "dcgan64", "stackgan128"].cant_tell == 1

    # Two methods: the Bradley-Terry strength is the selection rate, per group.
    for m in same_time.methods:
        assert m.strength == pytest.approx(m.selection.value, abs=1e-9)


def test_selection_table_and_metrics_per_group(tmp_path):
    votes = published_votes()
    table = selection_table(votes, ("time_budget",))
    assert list(table.columns) == ["time_budget", "arm", "chosen", "decided", "cant_tell", "rate", "ci_low", "ci_high"]
    row = table[(table["time_budget"] == 12.0) & (table["arm"] == "stackgan128")].iloc[0]
    assert (row["chosen"], row["decided"], row["cant_tell"]) == (17, 75, 2)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(wilson_by_hand(17, 75), abs=1e-12)
    assert len(table) == 5 and selection_table([], ("time_budget",)).empty

    res = results_of_votes(votes, n_boot=100)
    metrics = res.metrics()
    assert metrics["survey_time_budget_12.0_selection_rate_dcgan64_srcnn"] == pytest.approx(58 / 75)
    assert metrics["survey_time_budget_0.0_selection_rate_dcgan64_srcnn"] == pytest.approx(36 / 60)
    assert metrics["survey_time_budget_12.0_p_holm_dcgan64_srcnn_vs_stackgan128"] == pytest.approx(
        binomial_p_by_hand(17, 75))
    assert (metrics["survey_time_budget_0.0_votes"], metrics["survey_time_budget_12.0_votes"],
            metrics["survey_votes"]) == (91, 77, 168)
    assert not any(k.startswith("survey_selection_rate") for k in metrics)  # every rate names its group

    text = markdown(res)
    iters, time = text.split("### time_budget = 0.0")[1].split("### time_budget = 12.0")
    assert "| dcgan64+srcnn | 58 / 75 | 77.3% |" in time and "| stackgan128 | 17 / 75 | 22.7% |" in time
    assert "| stackgan128 | 39 / 60 | 65.0% |" in iters and "77.3%" not in iters
    assert "3 participants, 91 votes (1 \"can't tell\"" in iters
    two = plot(res, tmp_path / "two.png")
    one = plot(results_of_votes([v for v in votes if v.group == EQUAL_TIME], n_boot=100), tmp_path / "one.png")
    with Image.open(two) as a, Image.open(one) as b:
        assert a.height > 1.5 * b.height  # one row of panels per group


def test_selection_rates_of_a_sweep_folder(tmp_path):
    """The report's table: per group and arm, checked against the votes database counted with SQL."""
    records, _ = highres_sweep(tmp_path)
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "gansweep.json").write_text(json.dumps({"design": HIGHRES_DESIGN.as_dict()}))
    assert selection_rates(folder).empty and list(selection_rates(folder).columns)[:2] == ["time_budget", "arm"]
    app = create_app(pool_from_records(records, HIGHRES_DESIGN), votes_path(folder), n_pairs=18, seed=0)
    answers = itertools.cycle(["left", "right", "cant_tell", "left"])
    for _ in range(3):
        answer_all(participant(app), 18, choose=lambda shades: next(answers))
    table = selection_rates(folder)
    db = votes_path(folder)
    for (budget, arm), r in table.set_index(["time_budget", "arm"]).iterrows():
        group = json.dumps({"time_budget": budget})
        (chosen, decided), = rows(db, f"""
            SELECT sum(chosen = '{arm}'), count(*) FROM votes_view
            WHERE comparison = '{group}' AND choice != 'cant_tell' AND '{arm}' IN (left_method, right_method)""")
        assert (r["chosen"], r["decided"]) == (chosen, decided) and decided > 0
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(wilson_by_hand(chosen, decided), abs=1e-12)
    assert sorted(table["time_budget"].unique()) == [0.0, 12.0] and len(table) == 6


# --- the command line -------------------------------------------------------------------------------------------------


@pytest.fixture
def highres_dir(tmp_path, monkeypatch):
    records, real = highres_sweep(tmp_path)
    return fake_sweep_dir(tmp_path, monkeypatch, records, real, HIGHRES_DESIGN)


def test_cli_group_option(highres_dir, capsys):
    code, out, err = run(capsys, "survey", highres_dir.path, "--group", "time_budget=0", "--pairs", "6")
    assert code == 0, err
    assert "survey of one comparison group (time_budget = 0.0: dcgan64, dcgan64+srcnn, stackgan128): 18 images" in out
    served = answer_all(participant(highres_dir.served[0][0]), 6)
    assert {b for _, (_, b), (_, b2) in served for b in (b, b2)} == {0.0}

    code, out, _ = run(capsys, "survey", highres_dir.path, "--methods", "stackgan128,dcgan64+srcnn")
    assert code == 0 and ("survey of 2 comparison groups (time_budget = 0.0: dcgan64+srcnn, stackgan128; "
                          "time_budget = 12.0: dcgan64+srcnn, stackgan128)") in out


def test_cli_a_group_with_one_method(tmp_path, monkeypatch, capsys):
    records, real = highres_sweep(tmp_path, fail={("stackgan128", 12.0), ("dcgan64+srcnn", 12.0)})
    fake = fake_sweep_dir(tmp_path, monkeypatch, records, real, HIGHRES_DESIGN)
    code, _, err = run(capsys, "survey", fake.path, "--group", "time_budget=12")
    assert code == 2 and err.count("\n") == 1 and not fake.served
    assert ("the survey compares two or more methods, got 1; methods with finished trials in time_budget = 12.0: "
            "dcgan64") in err
    code, out, _ = run(capsys, "survey", fake.path)  # without --group: the other group is surveyed, and that is said
    assert code == 0 and "survey of one comparison group (time_budget = 0.0: " in out
    assert "not surveyed, fewer than two of the methods finished there: time_budget = 12.0 (dcgan64)" in out


@pytest.mark.parametrize("args, message", [
    (["--group", "budget=0"], "--group budget=0: 'budget' is not a grouping field of this study; allowed: time_budget"),
    (["--group", "time_budget=5"], "--group time_budget=5: no comparison group has time_budget = 5; allowed: "
                                   "time_budget=0.0, time_budget=12.0"),
    (["--group", "time_budget"], "--group 'time_budget' is not FIELD=VALUE (e.g. --group time_budget=0)"),
    (["--group", "time_budget=0", "--methods", "dcgan64"], "the survey compares two or more methods, got 1; methods "
     "with finished trials in time_budget = 0.0: dcgan64, dcgan64+srcnn, stackgan128"),
    (["--methods", "dcgan64,dcgan32"], "method 'dcgan32' is not an arm of this sweep; methods with finished trials: "
                                       "dcgan64, dcgan64+srcnn, stackgan128"),
])
def test_cli_bad_group_input(highres_dir, capsys, args, message):
    code, _, err = run(capsys, "survey", highres_dir.path, *args)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not highres_dir.served


def test_cli_group_on_a_study_without_groups(tmp_path, monkeypatch, capsys):
    from tests.test_survey_pool import FLAT, fake_sweep

    records, real = fake_sweep(tmp_path)
    fake = fake_sweep_dir(tmp_path, monkeypatch, records, real, FLAT)
    code, _, err = run(capsys, "survey", fake.path, "--group", "seed=0")
    assert code == 2 and "this study has no comparison groups" in err and "without --group" in err


def test_survey_results_go_to_the_mlflow_parent_run(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from sweep.mlflow.tracker import SweepTracker

    records, _ = highres_sweep(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    folder, other = tmp_path / "exp", tmp_path / "other"
    for f in (folder, other):
        f.mkdir()
        (f / "gansweep.json").write_text(json.dumps({"design": HIGHRES_DESIGN.as_dict(),
                                                     "options": {"mlflow_uri": uri, "experiment": "gansweep"}}))
    tracker = SweepTracker(uri, experiment_name="gansweep")
    parent = tracker.start_sweep("exp", storage.absolute(str(folder)), "paper-highres")
    tracker.end_sweep("FAILED")  # a sweep with a failed trial: survey-results must not change that
    app = create_app(pool_from_records(records, HIGHRES_DESIGN), votes_path(folder), n_pairs=12, seed=0)
    for _ in range(2):
        answer_all(participant(app), 12, choose=lambda s: "left" if s[0][0] == "stackgan128" else "right")

    code, out, err = run(capsys, "survey-results", folder, "--bootstrap", "100")
    assert code == 0, err
    expected = survey_results(votes_path(folder), n_boot=100).metrics()
    client = MlflowClient(uri)
    run_ = client.get_run(parent)
    assert run_.info.status == "FAILED" and f"on parent run {parent}" in out
    logged = {k: v for k, v in run_.data.metrics.items() if k.startswith("survey_")}
    assert logged.keys() == expected.keys() and all(logged[k] == pytest.approx(v) for k, v in expected.items())
    assert logged["survey_votes"] == 24 and "survey_time_budget_12.0_selection_rate_stackgan128" in logged
    assert {Path(a.path).name for a in client.list_artifacts(parent, "report")} == {
        "survey_results.md", "survey_selection_rate.png"}
    assert len(client.search_runs([run_.info.experiment_id])) == 1  # nothing created

    said = log_to_parent_run(other, expected, [])  # a sweep the store has no parent run for
    assert said.startswith(f"MLflow: not logged (no parent run of this sweep in {uri}")
    assert len(client.search_runs([run_.info.experiment_id])) == 1


def test_no_import_circle_in_the_survey():
    """stats never imports render (render imports stats), and no survey module imports back one that imports it."""
    package = Path(__file__).resolve().parents[1] / "sweep" / "survey"
    graph = {}
    for path in package.glob("*.py"):
        module = f"sweep.survey.{path.stem}" if path.stem != "__init__" else "sweep.survey"
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sweep.survey"):
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        graph[module] = {m for m in imported if m.startswith("sweep.survey.") and m != module}
    graph = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    assert "sweep.survey.render" not in graph["sweep.survey.stats"]
    assert "sweep.survey.stats" in graph["sweep.survey.render"]

    def reaches(start, target, seen=()):
        return any(d == target or (d not in seen and reaches(d, target, (*seen, d))) for d in graph[start])

    assert not [m for m in graph if m != "sweep.survey" and reaches(m, m)]


def test_no_votes_in_a_group_is_not_a_rate():
    votes = match("p1", "A", "B", 3, 1, group=EQUAL_ITER) + match("p2", "A", "B", 0, 0, 2, group=EQUAL_TIME)
    res = results_of_votes(votes, n_boot=100)
    only_ties = res.group(time_budget=12.0)
    assert all(m.selection.n == 0 and math.isnan(m.selection.value) and math.isnan(m.strength)
               for m in only_ties.methods)
    assert "survey_time_budget_12.0_selection_rate_A" not in res.metrics()
    assert res.group(time_budget=0.0).methods[0].selection.k == 3


def test_report_section_per_group(tmp_path):
    from sweep.report.write import survey_section

    records, _ = highres_sweep(tmp_path)
    folder = tmp_path / "exp"
    folder.mkdir()
    assert survey_section(folder, tmp_path) == ([], [], {}, None)  # no survey
    app = create_app(pool_from_records(records, HIGHRES_DESIGN), votes_path(folder), n_pairs=6, seed=0)
    client = participant(app)
    client.get("/api/next")
    assert survey_section(folder, tmp_path) == ([], [], {}, None)  # a pair served, nobody voted yet
    answer_all(client, 6, choose=lambda shades: "right")
    lines, files, metrics, rates = survey_section(folder, tmp_path)
    text = "\n".join(lines)
    assert text.count("## Human preference survey") == 1
    assert "### time_budget = 0.0" in text and "### time_budget = 12.0" in text
    assert [f.name for f in files] == ["survey_selection_rate.png"] and files[0].is_file()
    assert metrics["survey_votes"] == 6
    assert metrics["survey_time_budget_0.0_votes"] + metrics["survey_time_budget_12.0_votes"] == 6
    # the rates the ranking tables show are the cheap selection table's, taken from the same results
    from sweep.survey.store import read_votes

    cheap = selection_table(read_votes(votes_path(folder)), HIGHRES_DESIGN.group_by)
    by = [*HIGHRES_DESIGN.group_by, "arm"]
    pd.testing.assert_frame_equal(rates.sort_values(by).reset_index(drop=True),
                                  cheap.sort_values(by).reset_index(drop=True), check_dtype=False)

    votes_path(folder).unlink()
    with sqlite3.connect(votes_path(folder)) as con:  # a database of the first survey version: no groups
        con.execute("CREATE TABLE pairs (token TEXT)")
        con.execute("PRAGMA user_version = 1")
    lines, files, metrics, rates = survey_section(folder, tmp_path)
    assert "could not be read" in "\n".join(lines) and "version 1 kept no comparison groups" in "\n".join(lines)
    assert (files, metrics, rates) == ([], {}, None)

"""`gansweep survey` and `gansweep survey-results`: a sweep folder in, the server or the results out, and one clear
line with exit 2 for bad input. `sweep.records` is replaced by a fake that returns the fake sweep's records; the
folder's `gansweep.json` holds the study's design (and an MLflow store that does not exist: the MLflow path of
`survey-results` is tested in tests/test_survey_groups.py)."""

import json
import sys
import types

import pytest

from sweep.cli import main
from sweep.survey import app as survey_app
from sweep.survey.app import COOKIE
from tests.test_survey_pool import FLAT, fake_sweep, trial


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(map(str, args)))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def fake_sweep_dir(tmp_path, monkeypatch, records, real, design, mlflow_uri=None):
    """A sweep folder with a `gansweep.json` (`design`, `mlflow_uri`), whose records `sweep.records` returns;
    `served` collects what `serve` was asked to run."""
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "gansweep.json").write_text(json.dumps({
        "study": "test", "design": design.as_dict(),
        "options": {"mlflow_uri": mlflow_uri or f"sqlite:///{tmp_path}/no-such-store.db", "experiment": "gansweep"}}))
    fake = types.SimpleNamespace(records=records, real=real, calls=[])

    def read_sweep(path):
        fake.calls.append(str(path))
        return fake.records

    monkeypatch.setitem(sys.modules, "sweep.records", types.SimpleNamespace(
        read_sweep=read_sweep, reference_table=lambda path: fake.real))
    fake.served = []
    monkeypatch.setattr(survey_app, "serve", lambda app, host, port: fake.served.append((app, host, port)))
    fake.path = folder
    return fake


@pytest.fixture
def sweep_dir(tmp_path, monkeypatch):
    records, real = fake_sweep(tmp_path)
    return fake_sweep_dir(tmp_path, monkeypatch, records, real, FLAT)


def vote_through(app, n, choices=("left", "right", "cant_tell")):
    client = app.test_client()
    client.get("/")
    for i in range(n):
        pair = client.get("/api/next").get_json()
        client.post("/api/vote", json={"token": pair["token"], "choice": choices[i % len(choices)]})
    return client


def test_survey_serves_the_sweep_on_localhost(sweep_dir, capsys):
    code, out, _ = run(capsys, "survey", sweep_dir.path, "--methods", "B, A", "--pairs", "5", "--with-real")
    assert code == 0 and sweep_dir.calls == [str(sweep_dir.path)]
    ((app, host, port),) = sweep_dir.served
    assert (host, port) == ("127.0.0.1", 5050)
    assert "survey of A, B and real photos: 20 images, 5 pairs per participant" in out
    assert "http://127.0.0.1:5050/" in out
    client = vote_through(app, 5)
    assert client.get("/api/next").get_json() == {"done": True, "answered": 5, "total": 5}
    assert (sweep_dir.path / "survey" / "votes.db").is_file()


def test_survey_results_writes_table_and_chart(sweep_dir, capsys):
    run(capsys, "survey", sweep_dir.path, "--pairs", "9")
    vote_through(sweep_dir.served[0][0], 9)
    vote_through(sweep_dir.served[0][0], 9, choices=("right",))
    code, out, err = run(capsys, "survey-results", sweep_dir.path, "--bootstrap", "100")
    assert code == 0, err
    assert "2 participants, 18 votes (3 \"can't tell\"" in out and "| A vs B | 15 |" in out
    results = sweep_dir.path / "survey"
    assert (results / "survey_results.md").read_text() in out
    assert (results / "survey_selection_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "MLflow: not logged (no store at sqlite:///" in out  # the record's store does not exist: said, skipped
    code, out, _ = run(capsys, "survey-results", sweep_dir.path, "--bootstrap", "100", "--no-mlflow")
    assert code == 0 and "MLflow" not in out


@pytest.mark.parametrize("args, message", [
    (["--methods", "A,Z"], "method 'Z' is not an arm of this sweep; methods with finished trials: A, B"),
    (["--methods", "A"], "the survey compares two or more methods, got 1; methods with finished trials: A, B"),
    (["--pairs", "0"], "Invalid value for '--pairs'"),
    (["--real-share", "1"], "Invalid value for '--real-share'"),
])
def test_survey_bad_options(sweep_dir, capsys, args, message):
    code, _, err = run(capsys, "survey", sweep_dir.path, *args)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not sweep_dir.served


def test_survey_without_finished_trials_or_real_table(sweep_dir, capsys):
    sweep_dir.real = None
    code, _, err = run(capsys, "survey", sweep_dir.path, "--with-real")
    assert code == 2 and "has no held-out real image table: run the survey without --with-real" in err
    sweep_dir.records = [trial("A", 0, "diverged"), trial("B", 0, "failed")]
    code, _, err = run(capsys, "survey", sweep_dir.path)
    assert code == 2 and "no finished trial with final samples in this sweep (1 diverged, 1 failed)" in err
    assert err.count("\n") == 1 and not sweep_dir.served


def test_not_a_sweep_folder(tmp_path, capsys):
    for command in ("survey", "survey-results"):
        code, _, err = run(capsys, command, tmp_path / "nowhere")
        assert code == 2 and "nowhere is not a sweep folder" in err and err.count("\n") == 1


def test_survey_results_without_votes(sweep_dir, capsys):
    code, _, err = run(capsys, "survey-results", sweep_dir.path)
    assert code == 2 and "no survey votes at" in err and "run `gansweep survey` on the sweep first" in err
    assert not (sweep_dir.path / "survey").exists()  # reading results creates nothing
    run(capsys, "survey", sweep_dir.path)
    client = sweep_dir.served[0][0].test_client()
    client.get("/")
    client.get("/api/next")  # a pair served, never answered
    assert client.get_cookie(COOKIE) is not None
    code, _, err = run(capsys, "survey-results", sweep_dir.path)
    assert code == 2 and "no decided vote between two methods" in err and err.count("\n") == 1

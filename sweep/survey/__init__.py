"""The human preference survey (`gansweep survey` / `gansweep survey-results`).

People see two images from two different methods (arms) of one comparison group side by side and click the one
that looks better, or "can't tell"; with `--with-real` some pairs put a method's sample next to a held-out real
photo. Comparison groups are the study's (`Design.group_by`: study 2 compares its methods within each budget mode,
study 1 within each dataset and DA count, the baseline offered in every group it is compared with); every figure is
given per group. One module per job:

    pool           which images may be shown: per group, method and trial, each behind an opaque id
    design         which group and which two methods each of a participant's pairs compares (balanced, shuffled)
    store          the SQLite votes database: participants, served pairs (with tokens and groups), votes
    app            the Flask server and its page (static/: plain HTML, CSS and JS)
    stats          per group: selection rates, head-to-head binomial tests (Holm), realism rates -> SurveyResults
    bradley_terry  one strength per method of a group from its pairwise votes, bootstrapped over participants
    render         SurveyResults as Markdown and a bar chart (render imports stats, never the other way round)

For the report: `selection_rates(sweep_path)` is the selection rate of every arm in every comparison group as a
DataFrame, cheap (no bootstrap), ready to merge with the report's per-arm summary on (group fields..., arm).
"""

from pathlib import Path

import pandas as pd

from search_spaces import Design
from sweep.plan import load_record
from sweep.survey.pool import REAL, ImageRef, Pool, pool_from_records
from sweep.survey.stats import RATE_COLUMNS, NoVotes, SurveyResults, selection_table, survey_results
from sweep.survey.store import read_votes
from gan import storage

__all__ = ["REAL", "ImageRef", "NoVotes", "Pool", "SurveyResults", "create_app", "pool_from_records", "serve",
           "selection_rates", "survey_results", "sweep_design", "votes_path"]

SURVEY_DIR = "survey"


def votes_path(sweep_path) -> Path:
    """Where a sweep's survey votes live: `<sweep>/survey/votes.db`."""
    return Path(sweep_path) / SURVEY_DIR / "votes.db"


def sweep_design(sweep_path) -> Design:
    """How the arms of the sweep at `sweep_path` compare, as its record (`gansweep.json`) says: its comparison
    groups are the survey's. FileNotFoundError (one line) for a folder that is not a sweep."""
    design = load_record(str(sweep_path))["design"]
    return Design(arm_fields=tuple(design["arm_fields"]), group_by=tuple(design["group_by"]),
                  baseline=design["baseline"])


def selection_rates(sweep_path) -> pd.DataFrame:
    """The survey's selection rate of every arm in every comparison group of the sweep at `sweep_path`.

    One row per (comparison group, arm) that was shown in a method-vs-method pair; columns: the design's `group_by`
    fields (values typed as in the trial configs, e.g. `time_budget` 0.0), then `arm`, `chosen` (times chosen),
    `decided` (decided pairs it was in; "can't tell" left out), `cant_tell`, `rate` (chosen / decided, NaN when
    decided is 0), `ci_low`, `ci_high` (95% Wilson). Empty, with those columns, when the sweep has no survey votes
    (or lives in remote storage: surveys are local). ValueError for a votes database that cannot be read.
    """
    group_by = sweep_design(sweep_path).group_by
    db = votes_path(sweep_path)
    if storage.is_uri(str(sweep_path)) or not db.is_file():
        return pd.DataFrame(columns=[*group_by, *RATE_COLUMNS])
    return selection_table(read_votes(db), group_by)


def __getattr__(name):  # the web server (Flask) loads only when used
    if name in ("create_app", "serve"):
        from sweep.survey import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

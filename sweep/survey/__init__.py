"""The human preference survey (`gansweep survey` / `gansweep survey-results`).

People see two images from two different methods (arms) side by side and click the one that looks better, or
"can't tell"; with `--with-real` some pairs put a method's sample next to a held-out real photo. One module per job:

    pool           which images may be shown: per method and trial, each behind an opaque id
    design         which two methods each of a participant's pairs compares (balanced, then shuffled)
    store          the SQLite votes database: participants, served pairs (with tokens), votes
    app            the Flask server and its page (static/: plain HTML, CSS and JS)
    stats          selection rates, head-to-head binomial tests (Holm), realism rates -> SurveyResults
    bradley_terry  one strength per method from all pairwise votes, bootstrapped over participants
    render         SurveyResults as Markdown and a bar chart
"""

from sweep.survey.pool import REAL, ImageRef, Pool, pool_from_records
from sweep.survey.stats import SurveyResults, survey_results

__all__ = ["REAL", "ImageRef", "Pool", "SurveyResults", "create_app", "pool_from_records", "serve", "survey_results",
           "votes_path"]

SURVEY_DIR = "survey"


def votes_path(sweep_path):
    """Where a sweep's survey votes live: `<sweep>/survey/votes.db`."""
    from pathlib import Path

    return Path(sweep_path) / SURVEY_DIR / "votes.db"


def __getattr__(name):  # the web server (Flask) loads only when used
    if name in ("create_app", "serve"):
        from sweep.survey import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""A survey's results as Markdown and as a bar chart (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path

from sweep.survey.stats import Rate, SurveyResults


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f}%"


def _ci(low: float, high: float) -> str:
    return "–" if math.isnan(low) else f"{100 * low:.1f}–{100 * high:.1f}%"


def _rate(r: Rate) -> list[str]:
    return [f"{r.k} / {r.n}", _pct(r.value), _ci(r.low, r.high)]


def _p(p: float) -> str:
    return "–" if math.isnan(p) else (f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def markdown(res: SurveyResults) -> str:
    """The methods table (ranked by Bradley-Terry strength), the head-to-head table, and what each figure means."""
    summary = (f"{res.participants} participants, {res.votes} votes ({res.cant_tell} \"can't tell\", counted apart "
               f"from the rates; {res.real_votes} against a real photo).")
    lines = ["## Human preference survey", "", summary, ""]
    header = ["method", "chosen / shown", "selection rate", "95% CI (Wilson)", "can't tell",
              "Bradley-Terry strength", "95% CI (bootstrap)"]
    if res.has_real:
        header += ["chosen over real / shown", "realism rate", "95% CI (Wilson)", "can't tell vs real"]
    rows = []
    for m in res.methods:
        row = [m.method, *_rate(m.selection), str(m.cant_tell), _pct(m.strength), _ci(m.strength_low,
                                                                                      m.strength_high)]
        if res.has_real:
            row += [*_rate(m.realism), str(m.real_cant_tell)]
        rows.append(row)
    lines += _table(header, rows)

    lines += ["", "### Head to head", ""]
    lines += _table(["methods", "decided votes", "wins", "can't tell", "p (binomial, two-sided)", "p (Holm)"],
                    [[f"{p.a} vs {p.b}", str(p.a_wins + p.b_wins), f"{p.a_wins} : {p.b_wins}", str(p.cant_tell),
                      _p(p.p), _p(p.p_holm)] for p in res.pairs])

    notes = [
        ("Selection rate: times chosen / times shown, over the decided method-vs-method pairs (the published study's "
         "figure). Head to head: exact binomial test of \"each is chosen half the time\", Holm-adjusted over the "
         "pairs. Bradley-Terry: P(i chosen over j) = s_i / (s_i + s_j), strengths summing to 100%, interval from "
         f"{res.boot_used} of {res.n_boot} bootstrap resamples of participants (seed {res.seed})."),
    ]
    if res.has_real:
        notes.append("Realism rate: times a method's sample was chosen over a real photo / decided method-vs-real "
                     "pairs; 50% means its samples could not be told from photos.")
    notes.append("Wilson intervals and binomial tests treat every vote as independent; the bootstrap does not.")
    if not res.bt_mle_exists:
        notes.append("**Bradley-Terry:** some method never won (or never lost) against the others, so the maximum-"
                     "likelihood strengths do not exist; the strengths shown are the limit the fit runs to.")
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def plot(res: SurveyResults, path) -> Path:
    """Bars per method: selection rate and Bradley-Terry strength (and realism rate, with real photos), each with
    its 95% interval; a dashed line at 50% where that means "no preference"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m.method for m in res.methods]
    panels = [("selection rate (95% Wilson)", [(m.selection.value, m.selection.low, m.selection.high)
                                               for m in res.methods], 0.5),
              ("Bradley-Terry strength (95% bootstrap)", [(m.strength, m.strength_low, m.strength_high)
                                                          for m in res.methods], None)]
    if res.has_real:
        panels.append(("realism rate: chosen over a real photo (95% Wilson)",
                       [(m.realism.value, m.realism.low, m.realism.high) for m in res.methods], 0.5))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 0.6 * len(names) + 2), squeeze=False)
    for ax, (title, values, line) in zip(axes[0], panels):
        y = range(len(names))
        value = [v for v, _, _ in values]
        err = [[max(v - lo, 0) if not math.isnan(lo) else 0 for v, lo, _ in values],
               [max(hi - v, 0) if not math.isnan(hi) else 0 for v, _, hi in values]]
        ax.barh(y, value, xerr=err, color="#4c72b0", capsize=3)
        ax.set_yticks(list(y), names)
        ax.invert_yaxis()  # strongest on top
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize=10)
        if line is not None:
            ax.axvline(line, color="grey", linestyle="--", linewidth=1)
    fig.suptitle(f"Human preference survey: {res.participants} participants, {res.votes} votes", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

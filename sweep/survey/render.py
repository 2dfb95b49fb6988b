"""A survey's results as Markdown and as a bar chart (matplotlib, Agg): one section, and one row of panels, per
comparison group. Depends on `sweep.survey.stats`; nothing there depends on this module."""

from __future__ import annotations

import math
from pathlib import Path

from sweep.survey.pool import group_label
from sweep.survey.stats import GroupResults, Rate, SurveyResults


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


def _counts(participants: int, votes: int, cant_tell: int, real_votes: int) -> str:
    return (f"{participants} participants, {votes} votes ({cant_tell} \"can't tell\", counted apart from the rates; "
            f"{real_votes} against a real photo).")


def markdown(res: SurveyResults) -> str:
    """The survey as Markdown: the totals, then per comparison group its counts, its methods table (ranked by
    Bradley-Terry strength) and its head-to-head table, then what each figure means."""
    lines = ["## Human preference survey", "", _counts(res.participants, res.votes, res.cant_tell, res.real_votes)]
    if res.group_by:
        lines += ["", f"Methods are compared only within a comparison group ({', '.join(res.group_by)}); every "
                      "figure below is computed from that group's votes alone."]
    for g in res.groups:
        if g.group:
            lines += ["", f"### {group_label(g.group)}", "",
                      _counts(g.participants, g.votes, g.cant_tell, g.real_votes)]
        lines += ["", *_group_tables(g, res.has_real)]
    notes = [
        ("Selection rate: times chosen / times shown, over the decided method-vs-method pairs of the group (the "
         "published study's figure). Head to head: \"each is chosen half the time\" tested over generators and "
         "raters (crossed: a bootstrap resampling the raters and each method's trained generators, t test with "
         "2 x the fewer generators - 2 degrees of freedom) where a pair rests on 2+ generators of each method and "
         "2+ raters, else the exact binomial test over votes (binomial); Holm-adjusted over the pairs of the "
         "group. Bradley-Terry: P(i chosen over j) = s_i / (s_i + s_j), "
         f"strengths of a group's methods summing to 100%, interval from bootstrap resamples of the group's "
         f"participants ({res.n_boot} drawn, seed {res.seed}; those that could be fitted: "
         f"{', '.join(str(g.boot_used) for g in res.groups)})."),
    ]
    if res.has_real:
        notes.append("Realism rate: times a method's sample was chosen over a real photo / decided method-vs-real "
                     "pairs; 50% means its samples could not be told from photos.")
    notes.append("Wilson intervals and binomial tests treat every vote as independent; the bootstraps do not. "
                 "In simulation (20 raters x 40 votes, 5 generators per method, no true difference) the binomial "
                 "test's false-positive rate at 0.05 is 0.17-0.38, the crossed test's at most 0.07.")
    failed = [group_label(g.group) for g in res.groups if not g.bt_mle_exists]
    if failed:
        notes.append(f"**Bradley-Terry ({'; '.join(failed)}):** some method never won (or never lost) against the "
                     "others, so the maximum-likelihood strengths do not exist; the strengths shown are the limit "
                     "the fit runs to.")
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _group_tables(g: GroupResults, has_real: bool) -> list[str]:
    header = ["method", "chosen / shown", "selection rate", "95% CI (Wilson)", "can't tell",
              "Bradley-Terry strength", "95% CI (bootstrap)"]
    if has_real:
        header += ["chosen over real / shown", "realism rate", "95% CI (Wilson)", "can't tell vs real"]
    header += ["generators", "raters"]  # what the figures rest on: the method's trials, the group's participants
    rows = []
    for m in g.methods:
        row = [m.method, *_rate(m.selection), str(m.cant_tell), _pct(m.strength), _ci(m.strength_low,
                                                                                      m.strength_high)]
        if has_real:
            row += [*_rate(m.realism), str(m.real_cant_tell)]
        rows.append([*row, str(m.generators or "–"), str(g.participants)])
    lines = _table(header, rows)
    lines += ["", "Head to head:", ""]
    lines += _table(["methods", "decided votes", "wins", "can't tell", "generators", "raters", "first's share (95% CI)",
                     "test", "p (two-sided)", "p (Holm)"],
                    [[f"{p.a} vs {p.b}", str(p.a_wins + p.b_wins), f"{p.a_wins} : {p.b_wins}", str(p.cant_tell),
                      f"{p.generators_a} : {p.generators_b}", str(p.raters), _ci(p.share_low, p.share_high),
                      p.test or "–", _p(p.p), _p(p.p_holm)] for p in g.pairs])
    return lines


def plot(res: SurveyResults, path) -> Path:
    """One row per comparison group, bars per method: selection rate and Bradley-Terry strength (and realism rate,
    with real photos), each with its 95% interval; a dashed line at 50% where that means "no preference"."""
    import matplotlib  # as sweep.report.plots: the Agg backend is chosen only when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_panels = 3 if res.has_real else 2
    heights = [0.6 * len(g.methods) + 1.2 for g in res.groups]
    fig, axes = plt.subplots(len(res.groups), n_panels, figsize=(4.5 * n_panels, sum(heights) + 0.8), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for row, g in zip(axes, res.groups):
        names = [m.method for m in g.methods]
        panels = [("selection rate (95% Wilson)", [(m.selection.value, m.selection.low, m.selection.high)
                                                   for m in g.methods], 0.5),
                  ("Bradley-Terry strength (95% bootstrap)", [(m.strength, m.strength_low, m.strength_high)
                                                              for m in g.methods], None)]
        if res.has_real:
            panels.append(("realism rate: chosen over a real photo (95% Wilson)",
                           [(m.realism.value, m.realism.low, m.realism.high) for m in g.methods], 0.5))
        for ax, (title, values, line) in zip(row, panels):
            y = range(len(names))
            value = [v for v, _, _ in values]  # NaN (no votes) draws no bar
            err = [[max(v - lo, 0) if not math.isnan(lo) else 0 for v, lo, _ in values],
                   [max(hi - v, 0) if not math.isnan(hi) else 0 for v, _, hi in values]]
            ax.barh(y, value, xerr=err, color="#4c72b0", capsize=3)
            ax.set_yticks(list(y), names)
            ax.invert_yaxis()  # strongest on top
            ax.set_xlim(0, 1)
            ax.set_title(title if not res.group_by else f"{group_label(g.group)}: {title}", fontsize=9)
            if line is not None:
                ax.axvline(line, color="grey", linestyle="--", linewidth=1)
    fig.suptitle(f"Human preference survey: {res.participants} participants, {res.votes} votes", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

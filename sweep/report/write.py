"""The sweep report: what the scores mean and the rules, the reference said once, a per-arm table per group compared
with the study's baseline, the tables the metric schema declares (leakage, super-resolution), plots and a sample
mosaic, written next to the results (`<SWEEP>/report/`) and attached to the MLflow parent run.

The report reads trials through `sweep.records`, compares them by the study's `Design` (arm fields, groups,
baseline, notes) and takes every key, direction and extra table from `gan.metrics.schema`: it names no study's
fields and no metric of its own, so a new study or metric family needs no change here.

    results.parquet      every report of every trial (one row per trial and step)
    summary.csv / .md    per arm: seeds finished / diverged / failed, mean and 95% CI over seeds, the paired
                         difference to the baseline with its CI and Holm-adjusted p-value, whether it holds, rank
                         within its group, what the budget bought, and every share the schema declares (pooled)
    final_<metric>.png   bars per arm with every seed's dot and every lost seed's x, the baseline and the floor
    curves_<metric>.png  the ranking metric against step, and vs_seconds_<metric>.png against training seconds
                         (only where trials were evaluated more than once)
    samples_mosaic.png   real reference images, then k final samples per (group, arm), never resampled

The tables are made in `sweep.report.tables`, the figures in `sweep.report.plots` and `sweep.report.mosaic`; the rules are `rules`.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gan.metrics.schema import (COST_COLUMNS, REPORT_TABLES, ReportTable, describe, direction, extractor_of, known,
                                lookup, metric_key)
from search_spaces import Design
from sweep.report import mosaic, plots, primaries, tables
from sweep.report.memorisation import memorisation_section
from sweep.survey import RATE_COLUMNS, NoVotes, survey_results, votes_path
from sweep.survey.render import markdown as survey_markdown, plot as survey_plot
from sweep.records import SweepFolder, read_inputs, read_sweep, reference_table, scored_generator_of
from sweep.report.stats import ALPHA, MIN_SEEDS
from gan import storage

REPORT_DIR = "report"


@dataclass
class Report:
    files: list[Path]  # local paths of the files written (for MLflow)
    summary: pd.DataFrame  # per arm: the ranking table with the pooled shares beside (summary.csv)
    best: list[dict]  # per group: its values, the rank-1 arm (None when nothing ranks), score, Δ, p, verdict
    notes: list[str]  # what the reader must know about the reference, said once
    metrics: dict  # figures for the MLflow parent run beyond the summary table (the survey's)
    primaries: list[primaries.Primary] = field(default_factory=list)  # the primary tests, in declaration order


def survey_section(sweep_path, out: Path) -> tuple[list[str], list[Path], dict, pd.DataFrame | None]:
    """The preference survey's figures when the sweep has votes (`gansweep survey`): Markdown lines (per comparison
    group of the study: its selection rates with Wilson intervals, Bradley-Terry strengths, head-to-head tests with
    Holm within the group), the chart (`survey_selection_rate.png`, one row per group), flat metrics for MLflow, and
    the selection rate of each arm per group (the design's group fields, then `RATE_COLUMNS`) for the ranking
    tables; None for the rates without votes. A votes database that cannot be read is said in the Markdown, not
    raised: the rest of the report stands."""
    if storage.is_uri(sweep_path) or not votes_path(sweep_path).is_file():
        return [], [], {}, None
    try:
        res = survey_results(votes_path(sweep_path))
    except NoVotes:  # a survey was opened but nobody decided a pair yet
        return [], [], {}, None
    except ValueError as e:
        return ["## Human preference survey", "", f"The survey's votes could not be read: {e}", ""], [], {}, None
    rates = res.table()[[*res.group_by, *RATE_COLUMNS]]
    return ([survey_markdown(res)], [survey_plot(res, out / "survey_selection_rate.png")], res.metrics(),
            rates if len(rates) else None)


# --- Markdown -----------------------------------------------------------------------------------------------------


def _fmt(mean, ci=math.nan, digits: int = 4) -> str:
    if mean is None or pd.isna(mean):
        return "–"
    text = f"{mean:.{digits}g}"
    return text if ci is None or pd.isna(ci) else f"{text} ± {ci:.2g}"


def _p(p) -> str:
    return "–" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def markdown_table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c).replace("|", "\\|") for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, cells[1:])])


def rules(metric: str, mode: str, baseline: str) -> list[str]:
    """The rules the tables follow, printed in summary.md (the code is `sweep.report.tables.summarize`)."""
    way = "ascending: lower is better" if mode == "min" else "descending: higher is better"
    return [
        f"Exploratory tables: each group's arms against `{baseline}` (shown as \"base\"), two-sided, Holm-adjusted "
        "within the group (the group is its own family, apart from the primary hypotheses).",
        f"Values: mean over an arm's finished seeds ± half-width of the 95% t interval ({MIN_SEEDS}+ seeds); every "
        f"interval and test is over seeds. Δ: the arm minus `{baseline}` on the same seeds (paired), ± its 95% t "
        "interval; d_z: Δ over the standard deviation of the per-seed differences. p: the exact sign-flip "
        "permutation test where the seeds let it reach Holm's first threshold, the paired t-test otherwise; "
        "identical differences get the exact sign-flip p (1/2^n one-sided), never 0.",
        f"holds ✓: p (Holm) < {ALPHA} *and* every seed of the arm and of `{baseline}` finished. A difference "
        "computed on the survivors of an arm that lost seeds is shown but marked \"incomplete\", never ✓: its "
        "lost seeds might have been its worst. Where a difference does not hold, the cell says the smallest "
        "difference the arm's seeds and its group's Holm family could have detected at 80% power (statsmodels "
        "TTestPower at the observed spread; approximate for the sign-flip test).",
        f"Ranked by `{metric}` ({way}) within each group, among the arms whose difference holds only (\"–\" "
        "otherwise): a rank without a difference that holds would order noise.",
    ]


def _rank(r) -> str:
    return "base" if r["is_baseline"] else ("–" if pd.isna(r["rank"]) else str(int(r["rank"])))


def _holds(r) -> str:
    if r["is_baseline"]:
        return ""
    if r["holds"]:
        return "✓"
    if r["significant"]:
        return "incomplete"
    if r["n_pairs"] < MIN_SEEDS:
        return ""
    if not r["reachable"]:
        return f"no difference could hold on {int(r['n_pairs'])} seeds"
    return f"no detectable difference (could detect >= {_fmt(r['detectable'], digits=2)}, d_z >= " \
           f"{r['detectable_dz']:.2g})"


def _dz(d) -> str:
    return "–" if pd.isna(d) else (("∞" if d > 0 else "-∞") if math.isinf(d) else f"{d:.2g}")


def _cost(r) -> list[str]:
    cells = []
    for column in COST_COLUMNS:
        parts = [(r.get(f"{key}_mean", math.nan), label) for key, label in column.parts]
        parts = [(v, label) for v, label in parts if pd.notna(v)]
        if not parts:
            cells.append("–")
        elif column.seconds:
            secs = sum(v for v, _ in parts)
            cells.append(f"{secs / 3600:.2f} h" if secs >= 3600 else f"{secs:.3g} s")
        else:
            cells.append(" + ".join(f"{v:.0f}{' ' + label if label else ''}" for v, label in parts))
    return cells


def _rate(rates: pd.DataFrame | None, design: Design, key: tuple, arm: str) -> str:
    """The survey's selection rate of `arm` in group `key` (see `summary_markdown`)."""
    hit = rates[(rates["arm"] == arm) & (rates[list(design.group_by)] == list(key)).all(axis=1)] \
        if design.group_by else rates[rates["arm"] == arm]
    if hit.empty:
        return "–"
    h = hit.iloc[0]
    return f"{h['rate']:.0%} [{h['ci_low']:.0%}, {h['ci_high']:.0%}] of {int(h['decided'])}"


def summary_markdown(summary: pd.DataFrame, design: Design, metric: str, mode: str, beside=(), notes=(),
                     inputs=(), finals: pd.DataFrame | None = None, rates: pd.DataFrame | None = None,
                     answer=()) -> str:
    """The answer to the primary hypotheses (`answer`: `primaries.answer_markdown` lines), what the scores mean,
    the rules and the reference, then one exploratory table per group: its baseline, its arms by rank and a row of
    the real images' own scores (from `inputs`, the driver's inputs.json). `rates`: the survey's selection rates
    per group (columns: the design's group fields, arm, chosen, decided, rate, ci_low, ci_high), shown as a column
    when given."""
    way = lookup(metric)[0]
    lines = ["# Sweep summary", "", *answer, "## Exploratory comparisons", "",
             f"- Ranking metric: {describe(metric)}."]
    if way.why:
        lines.append(f"- Why this metric ranks: {way.why}.")
    lines += [*[f"- Beside it: {describe(k)}." for k in beside if known(k)],
              *[f"- {r}" for r in rules(metric, mode, design.baseline)], "", "## Reference", "",
              *[f"- {n}" for n in notes]]
    if any(e.get("held_out") for e in inputs):
        lines.append("- Real images (floor) rows: the real training images scored as if they were samples (as many "
                     "as a trial scores) against the same reference: no generator of this training set can be "
                     "expected to beat them.")
    if any(not e.get("held_out") for e in inputs):
        lines.append("- Real images (own IS only) rows: without a held-out set the distances of the training images "
                     "to themselves mean nothing; their own Inception Score is shown for comparison.")
    lines.append("")
    unranked = summary[~summary["is_baseline"] & (summary[f"{metric}_n"] < MIN_SEEDS)]
    if len(unranked):
        lines += [f"**{len(unranked)} arm(s) have fewer than {MIN_SEEDS} finished seeds: they show no rank (–), no "
                  "interval and no test, because one seed is a single draw, not evidence (run with `--seeds 3` or "
                  "more).**", ""]
    survey = ["selected (survey)"] if rates is not None else []
    header = ["rank", "arm", *survey, "finished", "diverged", "failed", metric, f"Δ vs {design.baseline}", "d_z",
              "p (Holm)", "holds", *beside, *[c.title for c in COST_COLUMNS]]
    for key, shown in tables.shown_groups(summary, design):
        rows = [[_rank(r), r["arm"], *([_rate(rates, design, key, r["arm"])] if survey else []),
                 f"{r['finished']}/{r['n_trials']}", r["diverged"], r["failed"],
                 _fmt(r[f"{metric}_mean"], r[f"{metric}_ci95"]),
                 "baseline" if r["is_baseline"] else _fmt(r["delta"], r["delta_ci95"]),
                 "" if r["is_baseline"] else _dz(r["d_z"]), "" if r["is_baseline"] else _p(r["p_holm"]), _holds(r),
                 *[_fmt(r[f"{b}_mean"], r[f"{b}_ci95"]) for b in beside], *_cost(r)] for _, r in shown.iterrows()]
        entries = tables.matched_inputs(list(inputs), finals[finals["context"].isin(shown["context"])]) \
            if finals is not None else []
        if entries:
            rows.append(["", tables.floor_label(entries), *([""] if survey else []), "", "", "",
                         _fmt(*tables.floor_value(entries, metric)), "", "", "", "",
                         *[_fmt(*tables.floor_value(entries, b)) for b in beside], *[""] * len(COST_COLUMNS)])
        title = tables.group_title(design, key, spaced=True)
        lines += [f"## {title}" if title else "## All arms", "", markdown_table(header, rows), ""]
    return "\n".join(lines)


def _pm(mean, ci) -> str:
    """A share with its t interval over seeds, two decimals: '0.46 ± 0.08' ('0.46' with one seed)."""
    return f"{mean:.2f}" if pd.isna(ci) else f"{mean:.2f} ± {ci:.2f}"


def _share_cell(r, key: str, compare: bool) -> str:
    seen = r[f"{key}_measurable"]
    if seen is not None and not pd.isna(seen) and not seen:
        return "not measurable"
    if pd.isna(r[f"{key}_share"]):
        return "–"
    text = f"{_pm(r[f'{key}_share'], r[f'{key}_share_ci95'])} (exp {r[f'{key}_expected']:.2f}; " \
           f"{int(r[f'{key}_share_n'])} seeds)"
    if compare and not r["is_baseline"]:
        text += f", Δ {_fmt(r[f'{key}_delta'], digits=2)}, p {_p(r[f'{key}_p_holm'])}" \
                + (" ✓" if r[f"{key}_holds"] else "")
    return text


def _probe_cell(rates: list[dict]) -> str:
    """The probes' nested-CV rates averaged over seeds, or "not measurable (...)" when any seed's probe is blind."""
    if not rates:
        return "–"
    tpr, fpr = (sum(r[k] for r in rates) / len(rates) for k in ("tpr", "fpr"))
    blind = not all(r.get("measurable", True) for r in rates)
    return f"{'not measurable: ' if blind else ''}{tpr:.2f} / {fpr:.2f}"


def share_markdown(spec: ReportTable, summary: pd.DataFrame, keys, design: Design, finals: pd.DataFrame,
                   inputs: list[dict]) -> list[str]:
    """Per group, in the ranking table's order (baseline, then arms by rank): each arm's seed-level share per key
    with the expected value beside it (the `sweep.report.tables.share_table` columns merged into `summary`), the
    real images' share (mean and t interval over seeds' inputs) and the probes' rates."""
    keys = [k for k in keys if f"{k}_share" in summary]
    lines = [f"## {spec.title}", "", spec.intro, ""]
    for key, shown in tables.shown_groups(summary, design):
        rows = [[_rank(r), r["arm"], *[_share_cell(r, k, spec.compare) for k in keys]] for _, r in shown.iterrows()]
        entries = tables.matched_inputs(inputs, finals[finals["context"].isin(shown["context"])])
        real = {k: tables.floor_value(entries, k) for k in keys}
        if any(not math.isnan(v[0]) for v in real.values()):
            rows.append(["", tables.floor_label(entries), *["–" if math.isnan(real[k][0]) else
                                                            _pm(*real[k]) for k in keys]])
        probes = {k: [e["probe"][k] for e in entries if k in e.get("probe", {})] for k in keys}
        if any(probes.values()):  # how well each probe tells transformed from original real images
            rows.append(["", "probe on held-out real images (TPR / FPR)", *[_probe_cell(probes[k]) for k in keys]])
        title = tables.group_title(design, key, spaced=True) or "all arms"
        lines += [f"### {title}", "", markdown_table(["rank", "arm", *keys], rows), ""]
    return lines


def value_markdown(spec: ReportTable, values: pd.DataFrame, gains: pd.DataFrame, keys, design: Design) -> list[str]:
    """One table over every group: per arm reporting the keys, each key's mean ± CI (with Δ and p when
    `spec.compare`), and each declared gain per seed with its interval and whether it beats what it refines."""
    keys = [k for k in keys if f"{k}_mean" in values]
    gain_specs = [g for g in spec.gains if f"{g.key}_gain" in gains]
    rows = []
    merged = values.merge(gains, on=[*design.group_by, "context", "arm"], how="left") if len(gains) else values
    for _, r in merged.iterrows():
        cells = []
        for k in keys:
            value = _fmt(r[f"{k}_mean"], r[f"{k}_ci95"])
            cells.append(value if r["is_baseline"] or not spec.compare else
                         f"{value} (Δ {_fmt(r[f'{k}_delta'])}, p {_p(r[f'{k}_p_holm'])})")
        for g in gain_specs:
            beats = r[f"{g.key}_beats"]
            could = r[f"{g.key}_gain_detectable"]
            could = "no gain could hold on these seeds" if pd.isna(could) else f"could detect >= {could:.2g}"
            verdict = f"fewer than {MIN_SEEDS} seeds: untested" if beats is None or pd.isna(beats) else \
                (f"beats {g.versus}" if beats else f"does not beat {g.versus} (p {_p(r[f'{g.key}_gain_p'])}; {could})")
            cells.append(f"{_fmt(r[f'{g.key}_gain'], r[f'{g.key}_gain_ci95'])} (d_z {_dz(r[f'{g.key}_gain_dz'])}): "
                         f"{verdict}")
        rows.append([*(str(r[g]) for g in design.group_by), r["arm"], *cells])
    header = [*design.group_by, "arm", *keys, *[g.title for g in gain_specs]]
    return [f"## {spec.title}", "", spec.intro, "", markdown_table(header, rows), ""]


def with_shares(summary: pd.DataFrame, finals: pd.DataFrame, design: Design, extractor: str) -> pd.DataFrame:
    """`summary` with the seed-level shares of every share table of `gan.metrics.schema.REPORT_TABLES` the trials
    report, beside each arm (so summary.csv and the MLflow table hold the numbers the report prints)."""
    for spec in REPORT_TABLES:
        shares = tables.share_table(finals, design, spec.keys(extractor)) if spec.share else pd.DataFrame()
        if len(shares):
            summary = summary.merge(shares.drop(columns=[*design.group_by, "is_baseline", "rank"]),
                                    on=["context", "arm"], how="left")
    return summary


def declared_tables(summary: pd.DataFrame, finals: pd.DataFrame, design: Design, extractor: str,
                    inputs: list[dict]) -> list[str]:
    """The Markdown of every table of `gan.metrics.schema.REPORT_TABLES` the trials report (shares from
    `with_shares`' columns of `summary`)."""
    lines = []
    for spec in REPORT_TABLES:
        keys = spec.keys(extractor)
        if spec.share:
            if any(f"{k}_share" in summary for k in keys):
                lines += share_markdown(spec, summary, keys, design, finals, inputs)
            continue
        values = tables.value_table(finals, design, keys)
        if len(values):
            lines += value_markdown(spec, values, tables.gain_table(finals, design, spec.gains), keys, design)
    return lines


# --- the report ---------------------------------------------------------------------------------------------------


def generator_note(records) -> str:
    """Which generator the scores come from (`TrialConfig.scored_generator`), with the EMA decays, said once."""
    scored = Counter((scored_generator_of(r.config), r.config.get("ema")) for r in records)
    parts = []
    for (kind, ema), n in sorted(scored.items(), key=str):
        what = {"ema": f"the EMA generator (decay {ema}, warm-up min(decay, (1+t)/(10+t)))",
                "raw": "the raw generator"}.get(kind, "unknown")
        parts.append(f"{what} in {n} trial(s)")
    return "Scored generator: " + "; ".join(parts) + \
        " (the raw one is kept in each checkpoint)."


def write_report(sweep_path, design: Design, metric: str, mode: str) -> Report:
    """Write the report of the sweep into `<SWEEP>/report/` (replacing an earlier one) and return it. For a sweep in remote storage (a URI) the
    files are written locally, uploaded to `<SWEEP>/report/`, and the local copies returned."""
    records = read_sweep(sweep_path)
    if not records:
        raise FileNotFoundError(f"no trial folders (params.json / result.json) under {sweep_path}")
    folder = SweepFolder(sweep_path)
    ext = extractor_of(metric) or records[0].config.get("extractor", "effnet")
    remote = storage.is_uri(sweep_path)
    out = Path(tempfile.mkdtemp(prefix="gansweep_report_")) / REPORT_DIR if remote else \
        Path(storage.absolute(sweep_path)) / REPORT_DIR
    shutil.rmtree(out, ignore_errors=True)  # the folder is the report's own: no figure of an earlier report stays
    out.mkdir(parents=True)

    history, finals = tables.results_table(records), tables.finals_table(records, design)
    beside = [k for k in dict.fromkeys(metric_key(n, ext) for n in ("fid", "kid_mean", "is_mean"))
              if k != metric and k in finals]
    summary = tables.summarize(finals, design, metric, mode, beside=beside)
    inputs = read_inputs(sweep_path)
    notes = [*tables.reference_notes(inputs), *design.notes_for(r.arm for r in records), generator_note(records)]
    summary = with_shares(summary, finals, design, ext)
    answers = primaries.evaluate(finals, design, ext)
    files = [out / "results.parquet", out / "summary.csv", out / "summary.md"]
    history.to_parquet(files[0], index=False)
    summary.to_csv(files[1], index=False)
    survey_lines, survey_files, survey_metrics, rates = survey_section(sweep_path, out)
    markdown = [summary_markdown(summary, design, metric, mode, beside=beside, notes=notes, inputs=inputs,
                                 finals=finals, rates=rates, answer=primaries.answer_markdown(answers)),
                *declared_tables(summary, finals, design, ext, inputs),
                *memorisation_section(finals, design, ext, inputs), *survey_lines]
    files[2].write_text("\n".join(markdown))
    files += survey_files
    for key in [metric, *beside]:
        if key not in finals or not finals[key].notna().any():
            continue
        table = summary if key == metric else tables.summarize(finals, design, key, direction(key) or "max")
        floors = {k: tables.floor_value(tables.matched_inputs(inputs, finals[finals["context"].isin(g["context"])]),
                                        key)[0] for k, g in tables.shown_groups(table, design)}
        files.append(plots.plot_final(table, finals, key, out / f"final_{key}.png", design=design, floors=floors,
                                      note=describe(key)))
    if metric in history and history.groupby("trial_id")[metric].count().max() > 1:  # one evaluation: no curve
        history["context"] = history["trial_id"].map(finals.set_index("trial_id")["context"])
        files.append(plots.plot_curves(history, summary, metric, out / f"curves_{metric}.png", design=design))
        if "train_seconds" in history:
            files.append(plots.plot_curves(history, summary, metric, out / f"vs_seconds_{metric}.png",
                                           design=design, x="train_seconds"))
    real = reference_table(sweep_path)
    rows = [mosaic.reference_row(real or _training_table(folder, inputs), real is not None),
            *mosaic.arm_rows(records, summary, design, folder)]
    files.append(mosaic.compose(rows, out / "samples_mosaic.png"))
    if remote:
        storage.upload_dir(out, storage.join(str(sweep_path).rstrip("/"), REPORT_DIR), replace=True)
    return Report(files=files, summary=summary, best=tables.best_per_group(summary, design, metric, mode),
                  notes=notes, metrics=survey_metrics, primaries=answers)


def _training_table(folder: SweepFolder, inputs: list[dict]) -> str | None:
    """The first input's reference table when no input had a held-out set (it then holds the training images)."""
    found = [e["reference_table"] for e in inputs if e.get("reference_table")]
    return folder.local(folder.join(*found[0].split("/"))) if found else None


__all__ = ["Report", "write_report", "summary_markdown", "markdown_table", "rules", "REPORT_DIR"]

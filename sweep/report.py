"""The sweep report: every report of every trial as one table, a per-arm summary compared with the study's baseline,
plots and a sample mosaic, written next to the results (`<SWEEP>/report/`) and attached to the MLflow parent run.

The report reads trials through `sweep.records` and compares them by the study's `Design` (arm fields, groups,
baseline): it names no study's fields, so a new study needs no change here.

    results.parquet      every report of every trial (one row per trial and step)
    summary.csv / .md    per arm: seeds finished / diverged / failed, mean and 95% CI over seeds, the paired
                         difference to the baseline with its CI and Holm-adjusted p-value, rank within its group
    final_<metric>.png   bars per arm with every seed's dot, grouped as the design says
    curves_<metric>.png  the ranking metric against step; vs_seconds_<metric>.png against training seconds
    samples_mosaic.png   the last sample grid of each arm's lowest seed

The rules (also printed in summary.md): seeds are replicates; an arm's score is the mean over its *finished* seeds;
an interval needs two seeds and a test two seed pairs; arms rank first by how many seeds did not finish (fewer
first), then by the mean, so divergence never makes an arm look better.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gan.metrics.schema import describe, direction, extractor_of, known, metric_key
from search_spaces import Design
from sweep import plots, stats
from sweep.records import OUTCOMES, SweepFolder, TrialRecord, read_sweep
from trainables import storage

REPORT_DIR = "report"
ALPHA = 0.05  # a difference "holds" when its Holm-adjusted p-value is below this
INPUTS_FILE = "inputs.json"  # what the driver prepared per input: reference set, floor, leakage probe
COST_KEYS = ("step", "sr_step", "train_seconds")  # what an arm's budget bought


# --- tables -------------------------------------------------------------------------------------------------------


def _config_columns(config: dict) -> dict:
    return {k: v for k, v in config.items() if not isinstance(v, (dict, list))}


def results_table(records: list[TrialRecord]) -> pd.DataFrame:
    """Every report of every trial: one row per (trial, step), with the trial's config, arm, seed and outcome."""
    rows = [{"trial_id": r.trial_id, "name": r.name, "arm": r.arm, "outcome": r.outcome, **_config_columns(r.config),
             **row} for r in records for row in r.history]
    if not rows:
        return pd.DataFrame(columns=["trial_id", "name", "arm", "outcome", "step"])
    return pd.DataFrame(rows)


def finals_table(records: list[TrialRecord], design: Design) -> pd.DataFrame:
    """One row per trial: its last report, config, arm, outcome and the design's `context` (what its baseline must
    share with it)."""
    rows = [{"trial_id": r.trial_id, "arm": r.arm, "seed": r.seed, "outcome": r.outcome,
             "context": json.dumps(design.context(r.config)), **_config_columns(r.config), **r.last}
            for r in records]
    return pd.DataFrame(rows)


def _scores(trials: pd.DataFrame, metric: str) -> dict:
    """{seed: value} of the finished trials with a finite `metric`."""
    ok = trials[trials["outcome"] == "finished"]
    if metric not in ok:
        return {}
    return {int(s): float(v) for s, v in zip(ok["seed"], ok[metric]) if pd.notna(v) and math.isfinite(v)}


def summarize(finals: pd.DataFrame, design: Design, metric: str, mode: str, beside=()) -> pd.DataFrame:
    """Per arm (and context): outcome counts, the mean and 95% CI of `metric` (and of each `beside` key) over
    finished seeds, the difference to the baseline arm of the same context paired by seed, its paired-t p-value,
    Holm-adjusted across the non-baseline arms of each group, and the rank within the group."""
    if finals.empty:
        return pd.DataFrame()
    rows = []
    for (context, arm), trials in finals.groupby(["context", "arm"], sort=True):
        row = {k: trials[k].iloc[0] if k in trials else None for k in design.group_by}
        counts = trials["outcome"].value_counts()
        row.update(context=context, arm=arm, is_baseline=arm == design.baseline, n_trials=len(trials),
                   **{o: int(counts.get(o, 0)) for o in OUTCOMES})
        for key in (metric, *beside):
            seeds = _scores(trials, key)
            row[f"{key}_mean"], row[f"{key}_ci95"], row[f"{key}_n"] = stats.mean_ci(seeds.values())
        for key in COST_KEYS:  # what the budget bought: iterations reached and training time, over finished seeds
            row[f"{key}_mean"] = stats.mean_ci(_scores(trials, key).values())[0]
        base = finals[(finals["context"] == context) & (finals["arm"] == design.baseline)]
        if arm == design.baseline or base.empty:
            cmp = stats.Paired(0, math.nan, math.nan, math.nan)
        else:
            cmp = stats.paired(_scores(trials, metric), _scores(base, metric))
        row.update(n_pairs=cmp.n, delta=cmp.delta, delta_ci95=cmp.ci, p=cmp.p)
        rows.append(row)
    out = pd.DataFrame(rows)
    out["p_holm"] = math.nan
    out["rank"] = pd.array([pd.NA] * len(out), dtype="Int64")
    for _, g in out.groupby(list(design.group_by), dropna=False, sort=False) if design.group_by else [((), out)]:
        tested = g[~g["is_baseline"]]
        out.loc[tested.index, "p_holm"] = stats.holm(tested["p"])
        ranked = g[g[f"{metric}_mean"].notna()]
        order = ranked.assign(unfinished=ranked["n_trials"] - ranked["finished"],
                              key=ranked[f"{metric}_mean"] * (1 if mode == "min" else -1))
        order = order.sort_values(["unfinished", "key"])
        out.loc[order.index, "rank"] = range(1, len(order) + 1)
    out["holds"] = out["p_holm"] < ALPHA
    return out.sort_values([*design.group_by, "rank"], na_position="last").reset_index(drop=True)


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
    way = "ascending: lower is better" if mode == "min" else "descending: higher is better"
    return [
        f"Ranked by `{metric}` ({way}) within each group; arms with seeds that did not finish (diverged, failed, "
        "stopped) rank after those whose seeds all finished, so divergence never makes an arm look better.",
        "Values: mean over an arm's finished seeds ± half-width of the 95% t interval (only with 2+ seeds). "
        f"Δ: the arm minus `{baseline}` on the same seeds (paired), ± its 95% t interval; p: two-sided paired "
        f"t-test, Holm-adjusted across the arms of a group; ✓ marks p_holm < {ALPHA}.",
    ]


def _cost(r) -> list[str]:
    sr = f" + {r['sr_step_mean']:.0f} SR" if pd.notna(r.get("sr_step_mean", math.nan)) else ""
    its = "–" if pd.isna(r.get("step_mean", math.nan)) else f"{r['step_mean']:.0f}{sr}"
    secs = r.get("train_seconds_mean", math.nan)
    return [its, "–" if pd.isna(secs) else (f"{secs / 3600:.2f} h" if secs >= 3600 else f"{secs:.3g} s")]


def floor_rows(floors: list[dict], trials: pd.DataFrame, keys) -> dict | None:
    """The floor (the real training images scored as samples) of the inputs whose data these trials used: mean and
    95% CI over those inputs (one per seed) of each key; None when no input has a floor for the first key."""
    matched = [f["floor"] for f in floors
               if any(all(row.get(k) == v for k, v in f["match"].items()) for row in trials.to_dict("records"))]
    if not matched or not any(keys[0] in f for f in matched):
        return None
    return {k: stats.mean_ci([f[k] for f in matched if k in f])[:2] for k in keys}


def summary_markdown(summary: pd.DataFrame, design: Design, metric: str, mode: str, beside=(), notes=(),
                     floors=(), finals: pd.DataFrame | None = None) -> str:
    """The summary as Markdown: what the scores mean, the rules and the reference, then one table per group (with
    the floor of its inputs), then the leakage and super-resolution tables when the trials report them."""
    lines = ["# Sweep summary", "", *[f"- {describe(k)}" for k in (metric, *beside) if known(k)],
             *[f"- {r}" for r in rules(metric, mode, design.baseline)], *[f"- {n}" for n in notes], ""]
    if (summary.get(f"{metric}_n", pd.Series(dtype=float)) < 2).any():
        lines += ["**Some arms have fewer than two finished seeds: they show no interval and no test, and a "
                  "ranking on one seed is a single draw, not evidence (run with `--seeds 3` or more).**", ""]
    header = ["rank", "arm", "finished", "diverged", "failed", metric, f"Δ vs {design.baseline}", "p (Holm)", "",
              *beside, "iterations", "train time"]
    for key, g in (summary.groupby(list(design.group_by), dropna=False, sort=True) if design.group_by
                   else [((), summary)]):
        key = key if isinstance(key, tuple) else (key,)
        if g["is_baseline"].all() and not summary["is_baseline"].all():
            continue  # the baseline's own group: it is shown in every group it is compared with
        base = summary[summary["is_baseline"] & summary["context"].isin(g["context"])]
        shown = pd.concat([base, g[~g["is_baseline"]]])
        rows = [[("–" if pd.isna(r["rank"]) else str(int(r["rank"]))) + (" (base)" if r["is_baseline"] else ""), r["arm"],
                 f"{r['finished']}/{r['n_trials']}", r["diverged"], r["failed"],
                 _fmt(r[f"{metric}_mean"], r[f"{metric}_ci95"]),
                 "baseline" if r["is_baseline"] else _fmt(r["delta"], r["delta_ci95"]),
                 "" if r["is_baseline"] else _p(r["p_holm"]), "✓" if r["holds"] else "",
                 *[_fmt(r[f"{b}_mean"], r[f"{b}_ci95"]) for b in beside], *_cost(r)] for _, r in shown.iterrows()]
        if finals is not None:
            floor = floor_rows(floors, finals[finals["context"].isin(g["context"])], [metric, *beside])
            if floor:
                rows.append(["floor", "real images", "", "", "", _fmt(*floor[metric]), "", "", "",
                             *[_fmt(*floor[b]) for b in beside], "", ""])
        title = ", ".join(f"{k} = {v}" for k, v in zip(design.group_by, key))
        lines += [f"## {title}" if title else "## All arms", "", markdown_table(header, rows), ""]
    if floors:
        lines += ["Floor: the real training images scored as if they were samples (as many as a trial scores) "
                  "against the same reference; no generator of this training set can be expected to beat it.", ""]
    return "\n".join(lines)


def extra_tables(finals: pd.DataFrame, design: Design, keys: list[str], title: str, intro: str, *,
                 compare: bool = True) -> list[str]:
    """One Markdown table: per arm that reports them, each key's mean ± 95% CI over finished seeds and (`compare`)
    its paired difference to the baseline with the Holm-adjusted p (leakage shares, super-resolution quality)."""
    keys = [k for k in keys if k in finals and finals[k].notna().any()]
    if not keys:
        return []
    tables = {k: summarize(finals, design, k, direction(k) or "max").set_index(["context", "arm"]) for k in keys}
    first = tables[keys[0]]
    rows = []
    for idx, r in first.iterrows():
        if all(pd.isna(tables[k].loc[idx][f"{k}_mean"]) for k in keys):
            continue  # an arm that does not report these
        cells = []
        for k in keys:
            t = tables[k].loc[idx]
            value = _fmt(t[f"{k}_mean"], t[f"{k}_ci95"])
            cells.append(value if t["is_baseline"] or not compare else
                         f"{value} (Δ {_fmt(t['delta'])}, p {_p(t['p_holm'])})")
        rows.append([*(str(r[g]) for g in design.group_by), idx[1], *cells])
    return [f"## {title}", "", intro, "", markdown_table([*design.group_by, "arm", *keys], rows), ""]


# --- the report ---------------------------------------------------------------------------------------------------


@dataclass
class Report:
    files: list[Path]  # local paths of the files written (for MLflow)
    summary: pd.DataFrame
    best: list[dict]  # per group: the rank-1 arm and its score
    notes: list[str]  # what the reader must know (reference set, one seed, ...)
    metrics: dict  # figures for the MLflow parent run beyond the summary table (the survey's)


def read_inputs(sweep_path) -> list[dict]:
    """The driver's `inputs.json`: per input, which reference it used and why, and its floor ([] before it exists)."""
    folder = SweepFolder(sweep_path)
    if INPUTS_FILE not in folder.listdir()[1]:
        return []
    return json.loads(folder.read_text(folder.join(INPUTS_FILE)))


def survey_section(sweep_path, out: Path) -> tuple[list[str], list[Path], dict]:
    """The preference survey's figures when the sweep has votes (`gansweep survey`): Markdown lines (per comparison
    group of the study: its selection rates with Wilson intervals, Bradley-Terry strengths, head-to-head tests with
    Holm within the group), the chart (`survey_selection_rate.png`, one row per group) and flat metrics for MLflow.
    A votes database that cannot be read is said in the Markdown, not raised: the rest of the report stands.
    The published selection-rate table per method and budget is `sweep.survey.selection_rates(sweep_path)`."""
    from sweep.survey import NoVotes, survey_results, votes_path
    from sweep.survey.render import markdown, plot

    if storage.is_uri(sweep_path) or not votes_path(sweep_path).is_file():
        return [], [], {}
    try:
        res = survey_results(votes_path(sweep_path))
    except NoVotes:  # a survey was opened but nobody decided a pair yet
        return [], [], {}
    except ValueError as e:
        return ["## Human preference survey", "", f"The survey's votes could not be read: {e}", ""], [], {}
    return [markdown(res)], [plot(res, out / "survey_selection_rate.png")], res.metrics()


def mosaic_tiles(records: list[TrialRecord], folder: SweepFolder) -> list[tuple[str, str]]:
    """(label, local samples.png) per arm: the newest sample grid of the arm's lowest seed that has one."""
    tiles, seen = [], set()
    for r in sorted(records, key=lambda r: (r.arm, r.seed)):
        if r.arm in seen or not r.grids:
            continue
        seen.add(r.arm)
        grid = r.grids[-1]
        tiles.append((f"{r.arm} seed {r.seed} step {grid.step}", folder.local(grid.path)))
    return tiles


def write_report(sweep_path, design: Design, metric: str, mode: str) -> Report:
    """Write the report of the sweep into `<SWEEP>/report/` and return it. For a sweep in remote storage (a URI) the
    files are written locally, uploaded to `<SWEEP>/report/`, and the local copies returned."""
    records = read_sweep(sweep_path)
    if not records:
        raise FileNotFoundError(f"no trial folders (params.json / result.json) under {sweep_path}")
    folder = SweepFolder(sweep_path)
    ext = extractor_of(metric) or records[0].config.get("extractor", "effnet")
    beside = [k for k in dict.fromkeys([metric_key("fid", ext), metric_key("kid_mean", ext),
                                        metric_key("is_mean", ext)]) if k != metric]
    remote = storage.is_uri(sweep_path)
    out = Path(tempfile.mkdtemp(prefix="gansweep_report_")) / REPORT_DIR if remote else \
        Path(storage.absolute(sweep_path)) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)

    history, finals = results_table(records), finals_table(records, design)
    beside = [k for k in beside if k in finals]
    summary = summarize(finals, design, metric, mode, beside=beside)
    inputs = read_inputs(sweep_path)
    notes = [n for entry in inputs for n in entry.get("notes", [])]
    files = [out / "results.parquet", out / "summary.csv", out / "summary.md"]
    history.to_parquet(files[0], index=False)
    summary.to_csv(files[1], index=False)
    markdown = [summary_markdown(summary, design, metric, mode, beside=beside, notes=notes,
                                 floors=[e for e in inputs if e.get("floor")], finals=finals)]
    markdown += extra_tables(finals, design, [k for k in finals if k.startswith("leakage_") and "_ci_" not in k
                                              and known(k)], "Leakage of each DA into the samples",
                             "Share of an arm's final samples a probe trained on real images calls transformed "
                             f"(vflip, negpos, contrast; hflip is the control), beside `{design.baseline}`: a leak "
                             "shows as a share well above the baseline's. Per trial, MLflow holds each share's "
                             "95% Wilson interval (`_ci_lo`/`_ci_hi`).")
    markdown += extra_tables(finals, design, ["psnr_srcnn", "psnr_bicubic", "ssim_srcnn", "ssim_bicubic"],
                             "Super-resolution: the SRCNN against plain bicubic",
                             "Held-out real images downscaled to 64 and brought back to 128, against the originals. "
                             "The SRCNN must beat bicubic; the difference of the two PSNRs is its gain in dB.",
                             compare=False)
    survey_lines, survey_files, survey_metrics = survey_section(sweep_path, out)
    markdown += survey_lines
    files[2].write_text("\n".join(markdown))
    files += survey_files
    for key in [metric, *beside]:
        if key not in finals or not finals[key].notna().any():
            continue
        table = summary if key == metric else summarize(finals, design, key, direction(key) or "max")
        files.append(plots.plot_final(table, finals, key, out / f"final_{key}.png", group_by=design.group_by,
                                      baseline=design.baseline, note=describe(key)))
    if metric in history and history["step"].nunique() > 1:  # curves need more than one evaluation
        files.append(plots.plot_curves(history, metric, out / f"curves_{metric}.png", group_by=design.group_by,
                                       baseline=design.baseline))
    if "train_seconds" in history and metric in history:
        files.append(plots.plot_curves(history, metric, out / f"vs_seconds_{metric}.png", x="train_seconds",
                                       group_by=design.group_by, baseline=design.baseline))
    files.append(plots.plot_mosaic(mosaic_tiles(records, folder), out / "samples_mosaic.png"))
    if remote:
        import pyarrow.fs

        fs, base = pyarrow.fs.FileSystem.from_uri(storage.join(str(sweep_path).rstrip("/"), REPORT_DIR))
        fs.create_dir(base, recursive=True)
        pyarrow.fs.copy_files(str(out), base, source_filesystem=pyarrow.fs.LocalFileSystem(),
                              destination_filesystem=fs)
    compared = summary.groupby(list(design.group_by), dropna=False)["is_baseline"].transform("all") == False  # noqa
    best = [{**{k: r[k] for k in design.group_by}, "arm": r["arm"], metric: r[f"{metric}_mean"]}
            for _, r in summary[(summary["rank"] == 1) & compared].iterrows()]
    return Report(files=files, summary=summary, best=best, notes=notes, metrics=survey_metrics)


__all__ = ["Report", "write_report", "summarize", "summary_markdown", "results_table", "finals_table",
           "markdown_table", "rules", "REPORT_DIR"]

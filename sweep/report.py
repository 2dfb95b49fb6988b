"""The sweep report: every trial's results as one table, a per-arm summary with 95% CIs, plots and sample mosaics.

Reads a sweep's experiment folder as Tune (or `--in-process`, which mirrors Tune's layout) left it, so it works on
a finished, a running or a dead sweep, and needs neither Ray nor MLflow:

    <EXP>/<trial dir>/params.json       the trial's config (flat TrialConfig kwargs)
    <EXP>/<trial dir>/result.json       one JSON line per report (restored trials repeat steps: the last one wins)
    <EXP>/<trial dir>/checkpoint_NNNNNN/samples.png
    <EXP>/<trial dir>/error.txt         the trial raised
    <EXP>/experiment_state-*.json       Tune's trial states (TERMINATED, ERROR, RUNNING, ...), when run by Tune

`write_report` writes into `<EXP>/report/`:

    results.parquet    every report of every trial (`load_results`)
    summary.csv        the per-arm summary (`summarize`), all numbers
    summary.md         the same as a Markdown table, with the metric directions spelled out
    final_<metric>.png final score per arm (bars with 95% CI, grouped by dataset and DA count, `none` as a line)
    curves_<metric>.png metric vs step per arm, mean over seeds
    samples_mosaic.png one labelled tile per arm: the last sample grid of the arm's lowest seed

Reading the scores: FID/KID lower = closer to the real set. IS: higher is the standard reading (Salimans et al.
2016); study 1 read lower as better for single-class sets. The summary ranks by one metric (FID by default) and
states its direction; IS is shown beside it, as computed.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from trainables import storage
from trainables.storage import is_uri

REPORT_DIR = "report"

# Keys Tune (or the in-process runner) adds to every result: bookkeeping, not measurements.
TUNE_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config", "time_since_restore",
    "iterations_since_restore", "experiment_tag", "warmup_time", "timesteps_total", "episodes_total",
    "timesteps_since_restore", "episodes_this_iter", "timesteps_this_iter",
})

# What identifies an arm; seeds are averaged over. The ablation's arm is (da, n_aug, pair_ratio); the rest keep
# arms of different datasets, resolutions, models, lengths or extractors apart.
GROUP_KEYS = ("dataset", "image_size", "model", "steps", "extractor", "da", "n_aug", "pair_ratio")
BASELINE_DA = "none"

IS_DIRECTION = ("IS: higher is the standard reading (Salimans et al. 2016); "
                "study 1 read lower as better for single-class sets.")

OUTCOMES = ("finished", "stopped", "diverged", "failed", "interrupted")


# --- reading an experiment folder -----------------------------------------------------------------------------


class _Folder:
    """Read-only access to an experiment folder: a local path, or a URI that pyarrow understands (s3://, gs://)."""

    def __init__(self, root):
        self.root = storage.absolute(str(root).rstrip("/") if is_uri(root) else root)
        self.remote = is_uri(root)
        if self.remote:
            import pyarrow.fs

            self.fs, self.base = pyarrow.fs.FileSystem.from_uri(self.root)
        self._tmp = None

    def join(self, *parts) -> str:
        return posixpath.join(self.root, *parts) if self.remote else os.path.join(self.root, *parts)

    def _fs_path(self, path: str) -> str:
        return self.base + path[len(self.root):]

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """(sub-folder names, file names) of `path`; empty when it doesn't exist."""
        if not self.remote:
            try:
                entries = list(os.scandir(path))
            except (FileNotFoundError, NotADirectoryError):
                return [], []
            return (sorted(e.name for e in entries if e.is_dir()), sorted(e.name for e in entries if e.is_file()))
        import pyarrow.fs

        infos = self.fs.get_file_info(pyarrow.fs.FileSelector(self._fs_path(path), allow_not_found=True))
        dirs = sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory)
        files = sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.File)
        return dirs, files

    def read_text(self, path: str) -> str:
        if not self.remote:
            return Path(path).read_text()
        with self.fs.open_input_stream(self._fs_path(path)) as f:
            return f.read().decode()

    def local(self, path: str) -> str:
        """A local path to the file at `path` (remote files are copied to a temp folder first)."""
        if not self.remote:
            return path
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="gansweep_report_")
        dest = os.path.join(self._tmp, self._fs_path(path).strip("/").replace("/", "__"))
        with self.fs.open_input_stream(self._fs_path(path)) as src, open(dest, "wb") as out:
            out.write(src.read())
        return dest


@dataclass
class TrialRecord:
    """One trial as its folder records it."""

    trial_id: str
    path: str  # the trial folder (local path or URI)
    config: dict
    results: list[dict]  # one per reported step, in step order (a restored trial's repeated steps: the last wins)
    status: str | None = None  # Tune's trial status from experiment_state-*.json; None when there is none
    error: bool = False  # error.txt / error.pkl present
    checkpoints: dict[str, int | None] = field(default_factory=dict)  # checkpoint folder on disk -> step it holds

    @property
    def last(self) -> dict:
        return self.results[-1] if self.results else {}

    @property
    def outcome(self) -> str:
        """finished | stopped | diverged | failed | interrupted (see `trial_outcome`)."""
        return trial_outcome(self.last, self.config, status=self.status, error=self.error)


def trial_outcome(last: dict, config: dict, *, status: str | None = None, error: bool = False) -> str:
    """How a trial ended, from its last result and Tune's status (None when unknown).

    diverged: its last report says diverged=1. failed: Tune's status is ERROR (or, with no status, an error file).
    finished: it reached `steps`. stopped: Tune terminated it before `steps` (a scheduler such as ASHA).
    interrupted: none of these: still running, pending, or its driver died (a resume continues it).
    """
    if last.get("diverged") == 1:
        return "diverged"
    if status == "ERROR" or (status is None and error):
        return "failed"
    step = last.get("step")
    if step is not None and step >= int(config.get("steps", 0) or 0) > 0:
        return "finished"
    if status == "TERMINATED":
        return "stopped"
    return "interrupted"


def _tune_states(folder: _Folder) -> dict[str, dict]:
    """trial folder name -> {'trial_id', 'status'} from the newest experiment_state-*.json (Tune runs only)."""
    _, files = folder.listdir(folder.root)
    states = sorted(f for f in files if f.startswith("experiment_state") and f.endswith(".json"))
    if not states:
        return {}
    try:
        data = json.loads(folder.read_text(folder.join(states[-1])))
        out = {}
        for entry in data.get("trial_data", []):
            trial = json.loads(entry[0]) if isinstance(entry, (list, tuple)) else json.loads(entry)
            out[trial["relative_logdir"]] = {"trial_id": trial.get("trial_id"), "status": trial.get("status")}
        return out
    except (ValueError, KeyError, TypeError, IndexError):  # a format this version does not know: do without
        return {}


def _parse_lines(text: str) -> list[dict]:
    """result.json -> one dict per line (a line cut short by a killed process is dropped)."""
    rows = []
    for line in text.splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def _dedupe_steps(rows: list[dict]) -> list[dict]:
    """One result per step, sorted by step: a restored trial re-reports the steps after its checkpoint, and the
    last report of a step wins."""
    by_step: dict = {}
    for i, row in enumerate(rows):
        by_step[row.get("step", row.get("training_iteration", i))] = row
    return [by_step[k] for k in sorted(by_step, key=lambda s: (s is None, s))]


_TUNE_TRIAL_ID = re.compile(r"_([0-9a-f]{5}_\d{5})_")


def read_trials(experiment_path) -> list[TrialRecord]:
    """Every trial folder under the experiment folder (those with a params.json or result.json)."""
    folder = _Folder(experiment_path)
    states = _tune_states(folder)
    trials = []
    for name in folder.listdir(folder.root)[0]:
        path = folder.join(name)
        dirs, files = folder.listdir(path)
        if "params.json" not in files and "result.json" not in files:
            continue
        lines = _parse_lines(folder.read_text(folder.join(name, "result.json"))) if "result.json" in files else []
        results = _dedupe_steps(lines)
        config = json.loads(folder.read_text(folder.join(name, "params.json"))) if "params.json" in files else {}
        if not config and results:
            config = dict(results[-1].get("config") or {})
        state = states.get(name, {})
        match = _TUNE_TRIAL_ID.search(name)
        trial_id = (state.get("trial_id") or next((r["trial_id"] for r in results if r.get("trial_id")), None)
                    or (match.group(1) if match else name))
        step_of = {r["checkpoint_dir_name"]: r.get("step") for r in lines if r.get("checkpoint_dir_name")}
        checkpoints = {d: step_of.get(d) for d in dirs if d.startswith("checkpoint_") and not d.endswith(".tmp")}
        trials.append(TrialRecord(trial_id=trial_id, path=path, config=config, results=results,
                                  status=state.get("status"), error=bool({"error.txt", "error.pkl"} & set(files)),
                                  checkpoints=checkpoints))
    return sorted(trials, key=lambda t: t.trial_id)


def checkpoint_samples(trial: TrialRecord, folder: _Folder) -> list[tuple[str, int | None, str]]:
    """(checkpoint folder name, step, path) of every samples.png in the trial's checkpoints, oldest first. Paths
    are in the experiment's storage: `folder.local(path)` gives a local file."""
    found = []
    for name in sorted(trial.checkpoints):
        if "samples.png" in folder.listdir(storage.join(trial.path, name))[1]:
            found.append((name, trial.checkpoints[name], storage.join(trial.path, name, "samples.png")))
    return found


# --- the results table ----------------------------------------------------------------------------------------


def _label(value):
    """Config values as report columns: lists joined with '+', an empty DA as 'none'."""
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value)) if value else "none"
    return value


def _config_columns(config: dict) -> dict:
    from gan.augment import da_label

    out = {k: _label(v) for k, v in config.items() if not isinstance(v, dict)}
    if "da" in config:
        out["da"] = da_label(config["da"])
    return out


def _arm(config: dict) -> str:
    from gan.config import TrialConfig

    try:
        return TrialConfig(**config).arm
    except (TypeError, ValueError):
        return str(_config_columns(config).get("da", "?"))


def load_results(experiment_path, trials: list[TrialRecord] | None = None) -> pd.DataFrame:
    """Every report of every trial as one tidy table: one row per (trial, step).

    Columns: trial_id, outcome, the config (dataset, da, n_aug, pair_ratio, seed, image_size, steps, extractor,
    study, ...), arm, step, then every metric the trial reported (Tune's bookkeeping keys are dropped).
    """
    trials = read_trials(experiment_path) if trials is None else trials
    rows = []
    for t in trials:
        config = _config_columns(t.config)
        arm = _arm(t.config)
        outcome = t.outcome
        for r in t.results:
            metrics = {k: v for k, v in r.items() if k not in TUNE_KEYS and not isinstance(v, (dict, list))}
            rows.append({"trial_id": t.trial_id, "outcome": outcome, **config, "arm": metrics.pop("arm", arm),
                         **metrics})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["trial_id", "outcome", "arm", "step"])
    lead = ["trial_id", "outcome", *_config_order(trials), "arm", "step"]
    lead = [c for c in dict.fromkeys(lead) if c in df.columns]
    return df[lead + [c for c in df.columns if c not in lead]].reset_index(drop=True)


def _config_order(trials: list[TrialRecord]) -> list[str]:
    """Config columns in TrialConfig's field order, then any other config keys."""
    import dataclasses

    from gan.config import TrialConfig

    keys = dict.fromkeys(f.name for f in dataclasses.fields(TrialConfig))
    present: dict = {}
    for t in trials:
        present.update(dict.fromkeys(t.config))
    return [k for k in keys if k in present] + [k for k in present if k not in keys]


# --- statistics -----------------------------------------------------------------------------------------------

# Two-sided 95% t quantiles by degrees of freedom, for when scipy is missing.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: float) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (95% two-sided)."""
    if not df or df < 1 or math.isnan(df):
        return math.nan
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:  # the nearest tabulated df at or below (conservative), 1.96 past the table
        below = [k for k in _T975 if k <= df]
        return _T975[max(below)] if df <= 120 else 1.96


def mean_ci(values) -> tuple[float, float, int]:
    """(mean, 95% CI half-width from the t-distribution, n) of the finite values; half-width NaN when n < 2."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(xs) / n
    if n < 2:
        return mean, math.nan, n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return mean, t975(n - 1) * sd / math.sqrt(n), n


def welch_ci(a, b) -> tuple[float, float]:
    """(mean(a) - mean(b), Welch 95% CI half-width) for unpaired samples; half-width NaN when either n < 2."""
    ma, _, na = mean_ci(a)
    mb, _, nb = mean_ci(b)
    if na < 2 or nb < 2:
        return ma - mb, math.nan
    va = sum((float(x) - ma) ** 2 for x in a if math.isfinite(float(x))) / (na - 1)
    vb = sum((float(x) - mb) ** 2 for x in b if math.isfinite(float(x))) / (nb - 1)
    se2 = va / na + vb / nb
    if se2 == 0:
        return ma - mb, 0.0
    dof = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return ma - mb, t975(dof) * math.sqrt(se2)


# --- the summary ----------------------------------------------------------------------------------------------


def extractor_of(df: pd.DataFrame) -> str:
    """The feature extractor whose metrics the table holds (the one of the first fid_* column)."""
    if "extractor" in df.columns and df["extractor"].notna().any():
        return str(df["extractor"].dropna().iloc[0])
    fid = [c for c in df.columns if c.startswith("fid_")]
    return fid[0][len("fid_"):] if fid else "effnet"


def default_mode(metric: str) -> str:
    """min for distances and losses (fid, kid, loss), max for scores (is, precision, recall, ...)."""
    return "min" if metric.split("_")[0] in ("fid", "kid", "loss") else "max"


def direction(metric: str, mode: str) -> str:
    """One line saying how `metric` ranks the arms."""
    name = metric.split("_")[0]
    if name in ("fid", "kid") and mode == "min":
        what = "lower = closer to the real set"
    elif name == "is":
        what = ("higher is better, the standard reading (Salimans et al. 2016)" if mode == "max" else
                "lower is better, as study 1 read IS for single-class sets")
    else:
        what = "lower is better" if mode == "min" else "higher is better"
    return f"Ranked by `{metric}` ({'ascending' if mode == 'min' else 'descending'}: {what})."


def final_results(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: its last report, whatever its outcome."""
    if df.empty:
        return df
    return df.sort_values(["trial_id", "step"]).groupby("trial_id", as_index=False).tail(1).reset_index(drop=True)


def summarize(df: pd.DataFrame, metric: str | None = None, mode: str | None = None) -> pd.DataFrame:
    """Per-arm summary over seeds of each trial's final result.

    An arm is a distinct (dataset, image_size, model, steps, extractor, da, n_aug, pair_ratio). Scores are taken from
    trials that *finished* (reached their last step); diverged, failed, stopped and interrupted trials are counted
    in their own columns, not averaged in (their last score belongs to an earlier step). Columns:

      n_trials, n (finished with a finite score), <metric>_mean/_ci95, <other>_mean/_ci95 for IS (or FID when
      ranking by IS), delta_<metric> (arm minus the `none` arm of the same dataset etc.: mean of per-seed
      differences when seeds pair up, else the difference of means), delta_<metric>_ci95 (paired t, else Welch),
      n_pairs, one count column per outcome, rank (1 = best within the arm's dataset, by `mode`).
    """
    metric = metric or f"fid_{extractor_of(df)}"
    mode = mode or default_mode(metric)
    ext = extractor_of(df)
    beside = f"fid_{ext}" if metric.startswith("is_") else f"is_mean_{ext}"
    keys = [k for k in GROUP_KEYS if k in df.columns]
    final = final_results(df)
    if final.empty:
        return pd.DataFrame()
    base_keys = [k for k in keys if k not in ("da", "n_aug", "pair_ratio")]

    def scores(frame: pd.DataFrame, col: str) -> list[tuple]:
        """(seed, value) of the finished trials with a finite `col`."""
        ok = frame[frame["outcome"] == "finished"]
        if col not in ok.columns:
            return []
        seeds = ok["seed"] if "seed" in ok.columns else pd.Series([None] * len(ok), index=ok.index)
        return [(s, float(v)) for s, v in zip(seeds, ok[col]) if pd.notna(v) and math.isfinite(v)]

    def by_seed(pairs: list[tuple]) -> dict:
        """seed -> value, or {} when seeds repeat (several trials per seed cannot be paired)."""
        seeds = [s for s, _ in pairs]
        return dict(pairs) if None not in seeds and len(set(seeds)) == len(seeds) else {}

    rows = []
    for key, group in final.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        row["arm"] = group["arm"].iloc[0]
        row["n_trials"] = len(group)
        m = scores(group, metric)
        row["n"] = len(m)
        row[f"{metric}_mean"], row[f"{metric}_ci95"], _ = mean_ci(v for _, v in m)
        if beside != metric:
            row[f"{beside}_mean"], row[f"{beside}_ci95"], _ = mean_ci(v for _, v in scores(group, beside))
        # the baseline: the `none` arm sharing everything but the DA
        base = final[final["da"] == BASELINE_DA] if "da" in final.columns else final.iloc[0:0]
        for k in base_keys:
            base = base[base[k] == row[k]]
        b = scores(base, metric)
        mp, bp = by_seed(m), by_seed(b)
        paired = sorted(set(mp) & set(bp))
        if row.get("da") == BASELINE_DA:
            delta, delta_ci, n_pairs = 0.0, 0.0, len(m)
        elif paired:
            delta, delta_ci, n_pairs = mean_ci([mp[s] - bp[s] for s in paired])
        elif m and b:
            (delta, delta_ci), n_pairs = welch_ci([v for _, v in m], [v for _, v in b]), 0
        else:
            delta, delta_ci, n_pairs = math.nan, math.nan, 0
        row[f"delta_{metric}"], row[f"delta_{metric}_ci95"], row["n_pairs"] = delta, delta_ci, n_pairs
        counts = group["outcome"].value_counts()
        for outcome in OUTCOMES:
            row[outcome] = int(counts.get(outcome, 0))
        rows.append(row)
    out = pd.DataFrame(rows)
    rank_by = list(base_keys)
    out["rank"] = (out.groupby(rank_by, dropna=False)[f"{metric}_mean"]
                   .rank(ascending=(mode == "min"), method="min") if rank_by else
                   out[f"{metric}_mean"].rank(ascending=(mode == "min"), method="min"))
    out["rank"] = out["rank"].astype("Int64")
    sort = rank_by + ["rank"]
    return out.sort_values(sort, na_position="last").reset_index(drop=True)


# --- rendering ------------------------------------------------------------------------------------------------


def _fmt(mean, ci, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{mean:.{digits}g}" if abs(mean) >= 1000 else f"{mean:.{digits}f}"
    if ci is not None and not (isinstance(ci, float) and math.isnan(ci)):
        text += f" ± {ci:.{digits}f}"
    return text


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table (no `tabulate` needed)."""
    cells = [[str(c).replace("|", "\\|") for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, cells[1:])])


def summary_markdown(summary: pd.DataFrame, metric: str, mode: str) -> str:
    """The summary as Markdown: the direction of every metric shown, then one table row per arm."""
    ext = metric.split("_")[-1]
    beside = f"fid_{ext}" if metric.startswith("is_") else f"is_mean_{ext}"
    lines = [
        "# Sweep summary", "",
        direction(metric, mode),
        "FID/KID: lower = closer to the real set. " + IS_DIRECTION,
        "Values: mean ± 95% CI half-width (t-distribution) over the seeds of trials that finished. "
        "Δ vs none: the arm minus the `none` baseline of the same dataset (paired by seed where possible).", "",
    ]
    multi = {k: summary[k].nunique() > 1 for k in ("image_size", "model", "steps", "extractor") if k in summary}
    extra = [k for k, v in multi.items() if v]
    header = ["rank", "dataset", *extra, "arm", "n", f"{metric}", f"Δ {metric} vs none", beside,
              "diverged", "failed", "stopped"]
    rows = []
    for _, r in summary.iterrows():
        rows.append([
            "–" if pd.isna(r["rank"]) else int(r["rank"]), r.get("dataset", ""), *[r[k] for k in extra], r["arm"],
            f"{r['n']}/{r['n_trials']}", _fmt(r[f"{metric}_mean"], r[f"{metric}_ci95"]),
            "baseline" if r.get("da") == BASELINE_DA else _fmt(r[f"delta_{metric}"], r[f"delta_{metric}_ci95"]),
            _fmt(r.get(f"{beside}_mean", math.nan), r.get(f"{beside}_ci95", math.nan)),
            r["diverged"], r["failed"], r["stopped"],
        ])
    return "\n".join(lines) + "\n" + markdown_table(header, rows) + "\n"


# --- plots ----------------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One panel per dataset (and per other arm-separating key that varies)."""
    keys = [k for k in GROUP_KEYS if k in summary and k not in ("da", "n_aug", "pair_ratio")
            and summary[k].nunique() > 1]
    if "dataset" in summary and "dataset" not in keys:
        keys.insert(0, "dataset")
    if not keys:
        return [("", summary)]
    out = []
    for key, g in summary.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        out.append((", ".join(f"{v}" if k == "dataset" else f"{k}={v}" for k, v in zip(keys, key)), g))
    return out


def plot_final(summary: pd.DataFrame, metric: str, path: Path, note: str = "") -> Path:
    """Bars of the final `metric` per arm with 95% CI error bars, grouped by dataset (panels) and DA count (bar
    groups along x, as in the study's charts); the `none` baseline is a dashed reference line."""
    plt = _pyplot()
    panels = _panels(summary)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 0.6 * len(summary) + 3), 3.6 * len(panels)),
                             squeeze=False)
    mean, ci = f"{metric}_mean", f"{metric}_ci95"
    for ax, (title, g) in zip(axes[:, 0], panels):
        base = g[g["da"] == BASELINE_DA] if "da" in g else g.iloc[0:0]
        arms = g[g["da"] != BASELINE_DA] if "da" in g else g
        colours = {da: f"C{i % 10}" for i, da in enumerate(sorted(summary["da"].unique()))} if "da" in g else {}
        x, ticks, labels = 0.0, [], []
        counts = sorted(arms["n_aug"].unique()) if "n_aug" in arms else [None]
        for count in counts:
            sub = arms[arms["n_aug"] == count] if count is not None else arms
            sub = sub.sort_values([k for k in ("da", "pair_ratio") if k in sub])  # the same order in every panel
            start = x
            for _, r in sub.iterrows():
                if pd.notna(r[mean]):
                    err = r[ci] if pd.notna(r[ci]) else 0.0
                    ax.bar(x, r[mean], yerr=err, capsize=3, color=colours.get(r.get("da"), "C0"))
                else:  # no finished seed: say why instead of drawing nothing
                    why = ", ".join(f"{r[o]} {o}" for o in OUTCOMES[1:] if r.get(o)) or "no score"
                    ax.text(x, 0.02, why, transform=ax.get_xaxis_transform(), rotation=90, ha="center",
                            va="bottom", fontsize=7, color="0.4")
                ticks.append(x)
                labels.append(r["arm"].split("@")[0])
                x += 1.0
            if count is not None and len(sub):
                ax.text((start + x - 1) / 2, 1.0, f"+{count}", transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=8)
            x += 0.8
        for _, r in base.iterrows():
            if pd.notna(r[mean]):
                ax.axhline(r[mean], color="k", ls="--", lw=1, label=f"none ({r[mean]:.3g})")
                if pd.notna(r[ci]):
                    ax.axhspan(r[mean] - r[ci], r[mean] + r[ci], color="k", alpha=0.08, zorder=0)
        ax.set_xticks(ticks, labels, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.7, max(x - 0.8, 1.0) - 0.3)
        ax.set_ylabel(metric)
        ax.set_title(title, loc="left", fontsize=9)
        if len(base):
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"final {metric} per arm (mean ± 95% CI over finished seeds)", fontsize=10)
    fig.tight_layout()
    if note:
        fig.text(0.01, -0.01, note, fontsize=7, va="top", wrap=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(df: pd.DataFrame, metric: str, path: Path) -> Path:
    """`metric` vs step, one line per arm (mean over the arm's seeds at each step), one panel per dataset."""
    plt = _pyplot()
    keys = [k for k in GROUP_KEYS if k in df.columns]
    data = df[df[metric].notna()] if metric in df else df.iloc[0:0]
    panel_keys = [k for k in keys if k not in ("da", "n_aug", "pair_ratio") and data[k].nunique() > 1] or \
        [k for k in ("dataset",) if k in data]
    groups = list(data.groupby(panel_keys, sort=True)) if panel_keys and len(data) else [("", data)]
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 3.4 * len(groups)), squeeze=False)
    for ax, (title, g) in zip(axes[:, 0], groups):
        for arm, a in g.groupby("arm", sort=True):
            curve = a.groupby("step")[metric].mean()
            ax.plot(curve.index, curve.values, marker="o", ms=3, label=arm,
                    ls="--" if arm == BASELINE_DA else "-", color="k" if arm == BASELINE_DA else None)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_title(", ".join(map(str, title)) if isinstance(title, tuple) else str(title), loc="left", fontsize=9)
        if len(g):
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_mosaic(tiles: list[tuple[str, str]], path: Path) -> Path:
    """One labelled tile per (label, image path), in a near-square grid."""
    plt = _pyplot()
    from PIL import Image

    n = max(1, len(tiles))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, image) in zip(axes.flat, tiles):
        with Image.open(image) as im:
            ax.imshow(im.convert("RGB"))
        ax.set_title(label, fontsize=8)
    if not tiles:
        axes[0, 0].text(0.5, 0.5, "no sample grids found", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def mosaic_tiles(trials: list[TrialRecord], df: pd.DataFrame, folder: _Folder) -> list[tuple[str, str]]:
    """(label, local samples.png) per arm: the newest sample grid of the arm's lowest seed that has one."""
    keys = [k for k in GROUP_KEYS if k in df.columns] or ["arm"]
    by_trial = {t.trial_id: t for t in trials}
    first = df.drop_duplicates("trial_id")
    tiles = []
    if first.empty:
        return tiles
    for _, g in first.groupby(keys, dropna=False, sort=True):
        for tid in g.sort_values("seed" if "seed" in g else "trial_id")["trial_id"]:
            found = checkpoint_samples(by_trial[tid], folder)
            if found:
                _, step, image = found[-1]
                image = folder.local(image)
                label = f"{g['dataset'].iloc[0]}\n" if "dataset" in g else ""
                seed = f" seed {g[g['trial_id'] == tid]['seed'].iloc[0]}" if "seed" in g else ""
                tiles.append((f"{label}{g['arm'].iloc[0]}{seed} step {step}", image))
                break
    return tiles


# --- the report -----------------------------------------------------------------------------------------------


def write_report(experiment_path, metric: str | None = None, mode: str | None = None) -> list[Path]:
    """Write the report of the experiment into `<EXP>/report/` and return its files.

    `metric` ranks the arms (default: FID of the trials' extractor) in direction `mode` (default: min for FID/KID,
    max otherwise). For a remote experiment (URI) the files are written to a local folder, uploaded to
    `<EXP>/report/`, and the local copies are returned (for MLflow to log).
    """
    trials = read_trials(experiment_path)
    if not trials:
        raise FileNotFoundError(f"no trial folders (params.json / result.json) under {experiment_path}")
    df = load_results(experiment_path, trials)
    ext = extractor_of(df)
    metric = metric or f"fid_{ext}"
    mode = mode or default_mode(metric)
    remote = is_uri(experiment_path)
    out = Path(tempfile.mkdtemp(prefix="gansweep_report_")) / REPORT_DIR if remote else \
        Path(os.path.abspath(os.path.expanduser(str(experiment_path)))) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)

    files = []
    df.to_parquet(out / "results.parquet", index=False)
    files.append(out / "results.parquet")
    summary = summarize(df, metric, mode)
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(summary_markdown(summary, metric, mode))
    files += [out / "summary.csv", out / "summary.md"]

    is_key, fid_key = f"is_mean_{ext}", f"fid_{ext}"
    for m in dict.fromkeys([metric, fid_key, is_key]):
        if m not in df.columns or not df[m].notna().any():
            continue
        s = summary if m == metric else summarize(df, m, default_mode(m))
        note = IS_DIRECTION if m.startswith("is_") else direction(m, default_mode(m) if m != metric else mode)
        files.append(plot_final(s, m, out / f"final_{m}.png", note=note))
        files.append(plot_curves(df, m, out / f"curves_{m}.png"))
    files.append(plot_mosaic(mosaic_tiles(trials, df, _Folder(experiment_path)), out / "samples_mosaic.png"))

    if remote:
        import pyarrow.fs

        fs, base = pyarrow.fs.FileSystem.from_uri(str(experiment_path).rstrip("/") + "/" + REPORT_DIR)
        fs.create_dir(base, recursive=True)
        pyarrow.fs.copy_files(str(out), base, source_filesystem=pyarrow.fs.LocalFileSystem(),
                              destination_filesystem=fs)
    return files


__all__ = ["TrialRecord", "read_trials", "trial_outcome", "load_results", "final_results", "summarize",
           "summary_markdown", "write_report", "mean_ci", "welch_ci", "t975", "markdown_table", "IS_DIRECTION"]

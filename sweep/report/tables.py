"""The report's tables as pandas frames: every report of every trial (`results_table`), one row per trial
(`finals_table`), one row per arm against the study's baseline (`summarize`), leakage shares over seeds with the
value a generator fitting its mixture would reach (`share_table`), values of further keys (`value_table`), per-seed gains of one key over another (`gain_table`),
the real images' own scores (`floor_value`) and the reference notes said once (`reference_notes`).

Everything here reads trials through `sweep.records`, compares them by the study's `Design` (arm fields, groups,
baseline) and takes keys and directions from `gan.metrics.schema`: it names no study's fields.

The rules (`sweep.report.write.rules` prints them in summary.md):
  * seeds are replicates; an arm's value is the mean over its *finished* seeds (diverged, failed, stopped and
    interrupted trials are counted, never averaged in);
  * an interval and a test need `stats.MIN_SEEDS` finished seeds; every interval and test is over per-seed values;
  * a difference to the baseline "holds" when its Holm-adjusted p is below `stats.ALPHA` *and* every seed of the arm
    and of its baseline finished: a test on the survivors of an arm that diverged would compare its lucky seeds;
  * only arms whose difference holds are ranked (the baseline never is: it is what they are compared with); an arm
    whose difference does not hold shows the smallest difference its seeds could have detected instead.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from gan.metrics.schema import (COST_COLUMNS, Gain, direction, leakage_da, leakage_expected_key,
                                leakage_measurable_key)
from search_spaces import Design
from sweep.report import stats
from sweep.records import OUTCOMES, TrialRecord

SAMPLES_FIELD = "eval_samples"  # TrialConfig field: generated images scored per evaluation (what a share counts)
RANK_KEYS = ["unfinished", "order"]  # how arms rank: seeds that did not finish first, then the metric


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


def scores(trials: pd.DataFrame, key: str) -> dict[int, float]:
    """{seed: value} of the finished trials with a finite `key`."""
    ok = trials[trials["outcome"] == "finished"]
    if key not in ok:
        return {}
    return {int(s): float(v) for s, v in zip(ok["seed"], ok[key]) if pd.notna(v) and math.isfinite(v)}


def groups(frame: pd.DataFrame, design: Design) -> list[tuple[tuple, pd.DataFrame]]:
    """(group values, rows) per group of the design, in sorted order; one group of everything without `group_by`."""
    if not design.group_by or frame.empty:
        return [((), frame)]
    return [(k if isinstance(k, tuple) else (k,), g)
            for k, g in frame.groupby(list(design.group_by), dropna=False, sort=True)]


def baseline_rows(summary: pd.DataFrame, group: pd.DataFrame) -> pd.DataFrame:
    """The baseline rows a group is compared with: its own, or (when the baseline has a group of its own, as a
    no-DA arm with a DA count of 0 does) the baseline of the same contexts."""
    return summary[summary["is_baseline"] & (summary.index.isin(group.index)
                                             | summary["context"].isin(group["context"]))]


def group_title(design: Design, key: tuple, *, spaced: bool = False) -> str:
    """A group's values as a reader sees them: 'dataset=lfw-subset, n_aug=64' ('dataset = lfw-subset, ...' when
    `spaced`, as Markdown headings have them); '' for a study without groups."""
    eq = " = " if spaced else "="
    return design.title(tuple(key)) or ", ".join(f"{k}{eq}{v}" for k, v in zip(design.group_by, key))


def shown_groups(summary: pd.DataFrame, design: Design) -> list[tuple[tuple, pd.DataFrame]]:
    """(group values, rows to show) per group: its baseline first, then its arms by rank (unranked last). A group
    holding nothing but the baseline is left out: the baseline is shown in every group it is compared with."""
    out = []
    only_baseline = summary["is_baseline"].all()
    for key, g in groups(summary, design):
        if g["is_baseline"].all() and not only_baseline:
            continue
        arms = g[~g["is_baseline"]].sort_values(["rank", "arm"], na_position="last")
        out.append((key, pd.concat([baseline_rows(summary, g), arms])))
    return out


def summarize(finals: pd.DataFrame, design: Design, metric: str, mode: str, beside=()) -> pd.DataFrame:
    """Per arm (and context): outcome counts, the mean and 95% CI of `metric` (and of each `beside` key) over
    finished seeds, what its budget bought (`COST_COLUMNS`), the difference to the baseline arm of the same context
    paired by seed (`stats.paired`, two-sided: these comparisons are exploratory) with its interval, d_z, test and
    the smallest d_z and difference it could detect, its p Holm-adjusted across the compared arms of its group (the
    group is the family), whether it holds (see the module's rules), and a rank within its group for the arms whose
    difference holds."""
    if finals.empty:
        return pd.DataFrame()
    rows, pairs = [], []
    for (context, arm), trials in finals.groupby(["context", "arm"], sort=True):
        row = {k: trials[k].iloc[0] if k in trials else None for k in design.group_by}
        counts = trials["outcome"].value_counts()
        row.update(context=context, arm=arm, is_baseline=arm == design.baseline, n_trials=len(trials),
                   **{o: int(counts.get(o, 0)) for o in OUTCOMES})
        row["complete"] = row["finished"] == len(trials)
        for key in (metric, *beside):
            row[f"{key}_mean"], row[f"{key}_ci95"], row[f"{key}_n"] = stats.mean_ci(scores(trials, key).values())
        for key in {k for column in COST_COLUMNS for k, _ in column.parts}:
            row[f"{key}_mean"] = stats.mean_ci(scores(trials, key).values())[0]
        base = finals[(finals["context"] == context) & (finals["arm"] == design.baseline)]
        compared = arm != design.baseline and not base.empty
        pairs.append((scores(trials, metric), scores(base, metric)) if compared else None)
        row["base_complete"] = compared and bool((base["outcome"] == "finished").all())
        rows.append(row)
    out = pd.DataFrame(rows)
    for column in ("n_pairs", "delta", "delta_ci95", "d_z", "p", "test", "reachable", "detectable_dz", "detectable",
                   "p_holm", "family"):
        out[column] = {"n_pairs": 0, "family": 0, "test": "", "reachable": False}.get(column, math.nan)
    out["rank"] = pd.array([pd.NA] * len(out), dtype="Int64")
    sign = 1 if mode == "min" else -1
    for _, g in groups(out, design):
        tested = [i for i in g.index if pairs[i] is not None and len(set(pairs[i][0]) & set(pairs[i][1])) >= 2]
        for i in g.index:
            if pairs[i] is None:
                continue
            cmp = stats.paired(*pairs[i], family=max(1, len(tested)))
            out.loc[i, ["n_pairs", "delta", "delta_ci95", "d_z", "p", "test", "reachable", "detectable_dz",
                        "detectable", "family"]] = [cmp.n, cmp.delta, cmp.ci, cmp.d_z, cmp.p, cmp.test, cmp.reachable,
                                                    cmp.detectable_dz, cmp.detectable, cmp.family]
        compared = out.loc[[i for i in g.index if pairs[i] is not None]]
        out.loc[compared.index, "p_holm"] = stats.holm(compared["p"])
    out["significant"] = out["p_holm"] < stats.ALPHA
    out["holds"] = out["significant"] & out["complete"] & out["base_complete"]
    for _, g in groups(out, design):
        ranked = g[g["holds"] & (g[f"{metric}_n"] >= stats.MIN_SEEDS)]
        ranked = ranked.assign(unfinished=ranked["n_trials"] - ranked["finished"],
                               order=ranked[f"{metric}_mean"] * sign).sort_values(RANK_KEYS)
        out.loc[ranked.index, "rank"] = range(1, len(ranked) + 1)
    out = out.assign(_base=~out["is_baseline"])
    order = [*design.group_by, "_base", "rank", "arm"]
    return out.sort_values(order, na_position="last").drop(columns="_base").reset_index(drop=True)


def best_per_group(summary: pd.DataFrame, design: Design, metric: str, mode: str) -> list[dict]:
    """Per shown group: the best-ranked arm whose difference to the baseline holds and is an improvement, with its
    score, Δ, p and verdict; `arm` None, and the verdict saying why, when no arm is better by a difference that
    holds (with what the group's seeds could have detected)."""
    best = []
    for key, shown in shown_groups(summary, design):
        entry = dict(zip(design.group_by, key))
        arms = shown[~shown["is_baseline"]]
        better = arms[arms["holds"] & ((arms["delta"] < 0) == (mode == "min"))].sort_values("rank")
        if better.empty:
            tested = arms[arms["n_pairs"] >= stats.MIN_SEEDS]
            worse = ", ".join(arms[arms["holds"]]["arm"])
            could = tested[tested["reachable"].astype(bool)]
            n = int(tested["n_pairs"].max()) if len(tested) else 0
            verdict = (f"unranked: no arm has {stats.MIN_SEEDS} finished seeds" if tested.empty else
                       f"no arm better than {design.baseline} by a difference that holds"
                       + (f"; worse (holds): {worse}" if worse else
                          f": no detectable difference (could detect >= {could['detectable'].min():.2g} in "
                          f"{metric}, d_z >= {could['detectable_dz'].min():.2g})" if len(could) else
                          f": with {n} seeds no difference could hold (the exact sign-flip test's smallest p is "
                          f"{stats.smallest_p(n):.2g})"))
            best.append({**entry, "arm": None, metric: math.nan, "delta": math.nan, "p_holm": math.nan,
                         "holds": False, "verdict": verdict})
            continue
        r = better.iloc[0]
        best.append({**entry, "arm": r["arm"], metric: r[f"{metric}_mean"], "delta": r["delta"],
                     "p_holm": r["p_holm"], "holds": True, "verdict": f"better than {design.baseline} (holds)"})
    return best


def _arm_rows(finals: pd.DataFrame, summary: pd.DataFrame):
    """(summary row, the arm's trials) per row of `summary`."""
    for _, r in summary.iterrows():
        yield r, finals[(finals["context"] == r["context"]) & (finals["arm"] == r["arm"])]


def _reported(finals: pd.DataFrame, keys) -> list[str]:
    return [k for k in keys if k in finals and finals[k].notna().any()]


def _per_key(finals: pd.DataFrame, design: Design, keys, base: list[str], columns) -> pd.DataFrame:
    """`summarize` each key (its direction; "max" for an undirected one), `columns(key, summary)` -> per (context,
    arm) columns of that key, merged side by side onto the group fields, context, arm and `base` columns."""
    out = None
    for key in keys:
        s = summarize(finals, design, key, direction(key) or "max")
        left = s[[*design.group_by, "context", "arm", *base]] if out is None else out
        out = left.merge(columns(key, s), on=["context", "arm"], how="left")
    return out


def share_table(finals: pd.DataFrame, design: Design, keys) -> pd.DataFrame:
    """Per arm, for each leakage share key the trials report (`gan.metrics.schema.leakage_keys`): seeds are the
    replicates, so the mean of the per-seed shares with its 95% t interval over finished seeds (`<key>_share`,
    `_share_ci95`, `_share_n`; `_share_lo` / `_share_hi` its ends), the mean of the per-seed expected values of a
    generator fitting its mixture (`<key>_expected`), whether every finished seed's probe could see the type
    (`<key>_measurable`: False when any could not; then no share, Δ or p is shown for it), and the paired
    difference of the per-seed shares to the baseline with its Holm-adjusted p (`<key>_delta`, `_p_holm`,
    `_holds`). Empty when no trial reports any of `keys`."""
    flags = {k: leakage_measurable_key(leakage_da(k)) for k in keys}
    keys = [k for k in keys if _reported(finals, [k, flags[k]])]
    if not keys:
        return pd.DataFrame()

    def columns(key: str, s: pd.DataFrame) -> pd.DataFrame:
        expected_key = leakage_expected_key(leakage_da(key))
        cols = {c: [] for c in ("share", "share_ci95", "share_n", "share_lo", "share_hi", "expected", "measurable")}
        for r, trials in _arm_rows(finals, s):
            seen = list(scores(trials, flags[key]).values())
            measurable = bool(seen) and min(seen) == 1.0
            mean, ci, n = stats.mean_ci(scores(trials, key).values()) if measurable else (math.nan, math.nan, 0)
            cols["share"].append(mean)
            cols["share_ci95"].append(ci)
            cols["share_n"].append(n)
            cols["share_lo"].append(mean - ci)
            cols["share_hi"].append(mean + ci)
            cols["expected"].append(stats.mean_ci(scores(trials, expected_key).values())[0] if measurable else math.nan)
            cols["measurable"].append(measurable if seen else None)
        see = pd.Series(cols["measurable"], index=s.index).fillna(False).astype(bool)
        cols.update(delta=s["delta"].where(see), p_holm=s["p_holm"].where(see), holds=s["holds"] & see)
        return s[["context", "arm"]].assign(**{f"{key}_{c}": list(v) for c, v in cols.items()})

    return _per_key(finals, design, keys, ["is_baseline", "rank"], columns)


def value_table(finals: pd.DataFrame, design: Design, keys) -> pd.DataFrame:
    """Per arm that reports any of `keys`: each key's mean and 95% CI over finished seeds (`<key>_mean`, `_ci95`)
    and its paired difference to the baseline with the Holm-adjusted p (`<key>_delta`, `_p_holm`, `_holds`)."""
    keys = _reported(finals, keys)
    if not keys:
        return pd.DataFrame()

    def columns(key: str, s: pd.DataFrame) -> pd.DataFrame:
        return s[["context", "arm", f"{key}_mean", f"{key}_ci95"]].assign(
            **{f"{key}_delta": s["delta"], f"{key}_p_holm": s["p_holm"], f"{key}_holds": s["holds"]})

    out = _per_key(finals, design, keys, ["is_baseline"], columns)
    return out[out[[f"{k}_mean" for k in keys]].notna().any(axis=1)].reset_index(drop=True)


def gain_table(finals: pd.DataFrame, design: Design, gains: tuple[Gain, ...]) -> pd.DataFrame:
    """Per arm that reports both keys of any gain: the gain per seed (key - over, on the same seed's trial) as mean,
    95% CI, seed count, p (`stats.paired`), d_z and the smallest detectable gain (`<key>_gain`, `_gain_ci95`,
    `_gain_n`, `_gain_p`, `_gain_dz`, `_gain_detectable`: NaN when no gain could hold), and `<key>_beats`: True
    when the gain's sign is the good one for `key` and p < ALPHA, False when not, None with fewer than two seeds."""
    gains = [g for g in gains if _reported(finals, [g.key, g.over]) == [g.key, g.over]]
    if not gains:
        return pd.DataFrame()
    rows = []
    for (context, arm), trials in finals.groupby(["context", "arm"], sort=True):
        row = {**{k: trials[k].iloc[0] for k in design.group_by}, "context": context, "arm": arm}
        for g in gains:
            cmp = stats.paired(scores(trials, g.key), scores(trials, g.over))
            good = cmp.delta > 0 if direction(g.key) == "max" else cmp.delta < 0
            row.update({f"{g.key}_gain": cmp.delta, f"{g.key}_gain_ci95": cmp.ci, f"{g.key}_gain_n": cmp.n,
                        f"{g.key}_gain_p": cmp.p, f"{g.key}_gain_dz": cmp.d_z,
                        f"{g.key}_gain_detectable": cmp.detectable,
                        f"{g.key}_beats": None if cmp.n < stats.MIN_SEEDS else bool(good and cmp.p < stats.ALPHA)})
        rows.append(row)
    out = pd.DataFrame(rows)
    return out[out[[f"{g.key}_gain_n" for g in gains]].gt(0).any(axis=1)].reset_index(drop=True)


# --- the real images ----------------------------------------------------------------------------------------------


def matched_inputs(inputs: list[dict], trials: pd.DataFrame) -> list[dict]:
    """The entries of the driver's `inputs.json` whose data these trials used (an entry's `match` fields agree with a
    trial's config) and that carry a floor."""
    rows = trials.to_dict("records")
    return [e for e in inputs if e.get("floor")
            and any(all(row.get(k) == v for k, v in e["match"].items()) for row in rows)]


def floor_value(entries: list[dict], key: str) -> tuple[float, float]:
    """(mean, 95% CI over inputs: one per seed) of the real images' own `key`; NaN where no entry has it."""
    return stats.mean_ci([e["floor"][key] for e in entries if key in e["floor"]])[:2]


def floor_label(entries: list[dict]) -> str:
    """What the real images' row is: against a held-out reference it is the floor (training images scored like
    samples); against the training set only their own IS means anything."""
    if all(e.get("held_out") for e in entries):
        return "real images (floor)"
    return "real images (own IS only: no held-out set)"


def reference_notes(inputs: list[dict]) -> list[str]:
    """The inputs' notes said once: notes that differ only in their "(seed N)" are merged into one with
    "(seeds 0, 1, 2)"; the order of first appearance is kept."""
    merged: dict[str, list] = {}
    for entry in inputs:
        seed = entry.get("match", {}).get("seed")
        for note in entry.get("notes", []):
            token = f"(seed {seed})"
            template = note.replace(token, "\0") if seed is not None and token in note else note
            merged.setdefault(template, []).append(seed)
    out = []
    for template, seeds in merged.items():
        seeds = sorted(set(s for s in seeds if s is not None))
        said = f"(seed {seeds[0]})" if len(seeds) == 1 else f"(seeds {', '.join(map(str, seeds))})"
        out.append(template.replace("\0", said))
    return out

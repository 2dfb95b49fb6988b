"""The survey's pool: which images it may show, per comparison group, method (arm) and trial, each behind an id.

Participants only ever compare methods of one comparison group: the trials that agree on the study's grouping
fields (`Design.group_by`; study 2: the budget mode, study 1: dataset and DA count). The baseline arm is offered in
every group it is compared with, as the report compares it: a baseline trial belongs to a group when it shares its
`Design.context` (every field but the arm fields and the seed) with a trial of that group. So in study 1 the no-DA
trials (whose own DA count is 0) are offered beside both DA counts, and in study 2 each budget's `dcgan64` only
beside the methods trained under the same budget.

A participant's browser only ever sees integer ids; the server maps an id to (image table, row) and serves that
row's stored PNG bytes. Nothing else on disk is reachable through the survey.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REAL = "real"  # the label of a held-out real photo in pairs and votes; no arm may be called this

# A comparison group: (field, value) for each of the design's `group_by` fields, in its order; () when the study
# has no grouping fields (every arm is compared with every other).
Group = tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class ImageRef:
    """Where one image is stored."""

    table: str  # absolute path of a gan.imagetable Parquet file
    row: int  # row of the image in that table


def group_label(group: Group) -> str:
    """'time_budget = 0.0', 'dataset = lfw-subset, n_aug = 64'; 'all arms' for the one group of an ungrouped study."""
    return ", ".join(f"{k} = {v}" for k, v in group) or "all arms"


def group_order(group: Group) -> tuple:
    """A sort key for groups: numbers by value, anything else (text, None) by its text, after the numbers."""
    return tuple((k, (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))) for k, v in group)


class Pool:
    """The images of a survey: per comparison group and method, one list of images per trial (plus `REAL` photos,
    shared by every group), every image behind an id.

    `draw` picks a trial of the method uniformly, then an image of that trial uniformly, so every seed weighs the
    same however many samples it saved. Ids are a fixed shuffle of 0..N-1 over the distinct images: the same records
    give the same ids, and an id says nothing about the method or group behind it. A baseline trial offered in two
    groups keeps one id per image.
    """

    def __init__(self, groups: dict[Group, dict[str, list[list[ImageRef]]]], real: list[ImageRef] | None = None,
                 skipped: dict[Group, tuple[str, ...]] | None = None):
        refs = sorted({ref for arms in groups.values() for trials in arms.values() for trial in trials for ref in trial}
                      | set(real or ()), key=lambda r: (r.table, r.row))
        ids = list(range(len(refs)))
        random.Random(0).shuffle(ids)
        self._ref = dict(zip(ids, refs))
        self._id = {ref: i for i, ref in self._ref.items()}
        self._trials = {(group, label): [[self._id[ref] for ref in trial] for trial in trials]
                        for group, arms in groups.items() for label, trials in arms.items()}
        self._real = [self._id[ref] for ref in real] if real else []
        self._members = {key: {i for trial in trials for i in trial} for key, trials in self._trials.items()}
        # Each comparison group with the methods it compares, groups in order.
        self.comparisons: dict[Group, tuple[str, ...]] = {
            group: tuple(sorted(groups[group])) for group in sorted(groups, key=group_order)}
        self.methods = tuple(sorted({m for ms in self.comparisons.values() for m in ms}))  # every arm, any group
        self.has_real = bool(self._real)
        # Groups of the sweep not surveyed because fewer than two of the chosen methods finished in them.
        self.skipped: dict[Group, tuple[str, ...]] = dict(skipped or {})
        self._png = functools.lru_cache(maxsize=4096)(self._read_png)

    def __len__(self) -> int:
        return len(self._ref)

    def draw(self, group: Group, label: str, rng: random.Random) -> int:
        """The id of a random image of method `label` in `group` (or of a real photo, `REAL`): a random trial, then
        a random image of it."""
        if label == REAL:
            return rng.choice(self._real)
        return rng.choice(rng.choice(self._trials[group, label]))

    def holds(self, group: Group, label: str, ref: ImageRef) -> bool:
        """Whether the image `ref` is one the pool shows for `label` (a method or `REAL`) in `group`."""
        image_id = self._id.get(ref)
        if image_id is None:
            return False
        if label == REAL:
            return image_id in self._real
        return image_id in self._members.get((group, label), ())

    def ref(self, image_id: int) -> ImageRef | None:
        """Where image `image_id` is stored, or None for an id that is not in the pool."""
        return self._ref.get(image_id)

    def id_of(self, ref: ImageRef) -> int | None:
        """The id of a stored image, or None when the pool does not hold it."""
        return self._id.get(ref)

    def png(self, image_id: int) -> bytes:
        """The stored PNG bytes of an image (cached); KeyError for an id that is not in the pool."""
        return self._png(self._ref[image_id])

    @staticmethod
    def _read_png(ref: ImageRef) -> bytes:
        from gan.imagetable import image_png

        return image_png(ref.table, ref.row)


def comparison_groups(records, design) -> dict[Group, dict[str, list]]:
    """{group: {arm: [records]}}: the records of each comparison group of `design`, the baseline's records in every
    group whose trials share their context (see the module docstring). A group that holds only baseline trials (its
    arms are compared elsewhere) is left out unless every record is a baseline trial."""
    records = list(records)
    own = {}  # group -> [records of the group itself]
    for r in records:
        own.setdefault(tuple(zip(design.group_by, design.group(r.config))), []).append(r)
    out = {}
    for group, members in own.items():
        compared = [r for r in members if r.arm != design.baseline]
        if not compared and any(r.arm != design.baseline for r in records):
            continue  # the baseline's own group: it is offered in every group it is compared with
        contexts = {design.context(r.config) for r in compared}
        base = [r for r in records
                if r.arm == design.baseline and (not compared or design.context(r.config) in contexts)]
        arms = out.setdefault(group, {})
        for r in [*compared, *base]:
            arms.setdefault(r.arm, []).append(r)
    return out


def pool_from_records(records, design, methods=None, real_table=None, groups=None) -> Pool:
    """The pool of a finished sweep's trial records (objects with `config`, `arm`, `seed`, `outcome`,
    `final_samples`), in the comparison groups of `design` (a `search_spaces.Design`).

    Only finished trials with a samples table count. `methods` restricts the survey to some arms (default: every arm
    with such a trial); `groups`, a list of (field, value text) pairs from `--group FIELD=VALUE`, to the comparison
    groups that have every one of those values; `real_table` adds held-out real photos. Without `groups`, a group
    left with fewer than two of the methods is not surveyed; a group picked by `groups` must have two. Raises
    ValueError (one line, saying what is allowed) for an unknown method, group field or value, fewer than two
    methods, or no usable trial, and FileNotFoundError for a samples table that is gone.
    """
    records = list(records)
    usable = [r for r in records if _usable(r)]
    if not usable:
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(Counter(r.outcome for r in records).items()))
        raise ValueError(f"no finished trial with final samples in this sweep ({outcomes or 'no trials'}): "
                         "the survey needs the samples of at least two finished arms")
    if any(r.arm == REAL for r in usable):
        raise ValueError(f"an arm is called {REAL!r}, the survey's label for real photos: rename the arm")
    by_group = {}  # the groups of every trial (so a group whose methods failed is still named), finished trials only
    for group, arms in comparison_groups(records, design).items():
        by_group[group] = {arm: kept for arm, trials in arms.items() if (kept := [r for r in trials if _usable(r)])}
    if groups:
        by_group = select_groups(by_group, design.group_by, groups)
    available = sorted({arm for arms in by_group.values() for arm in arms})
    allowed = f"methods with finished trials{' in ' + _labels(by_group) if groups else ''}: {', '.join(available)}"
    chosen = available if methods is None else list(dict.fromkeys(methods))
    for m in chosen:
        if m not in available:
            if not any(r.arm == m for r in records):
                what = "is not an arm of this sweep"
            elif not any(r.arm == m for r in usable):
                what = "has no finished trial with samples"
            else:
                what = "is in none of the chosen comparison groups" if groups else "is compared with no other arm"
            raise ValueError(f"method {m!r} {what}; {allowed}")
    if len(chosen) < 2:
        raise ValueError(f"the survey compares two or more methods, got {len(chosen)}; {allowed}")

    tables = {}  # samples table -> its refs, read once (a baseline trial can serve several groups)
    kept, skipped = {}, {}
    for group, arms in by_group.items():
        shown = [m for m in chosen if m in arms]
        if len(shown) < 2:
            if groups:
                raise ValueError(f"comparison group {group_label(group)} has {len(shown)} of the chosen methods with "
                                 f"finished trials ({', '.join(shown) or 'none'}): a survey compares two or more; "
                                 f"methods with finished trials there: {', '.join(sorted(arms)) or 'none'}")
            skipped[group] = tuple(shown)
            continue
        kept[group] = {}
        for m in shown:
            trials = sorted(arms[m], key=lambda r: r.seed)
            for r in trials:
                if r.final_samples not in tables:
                    tables[r.final_samples] = _table_refs(r.final_samples)
            kept[group][m] = [tables[r.final_samples] for r in trials if tables[r.final_samples]]
            if not kept[group][m]:
                raise ValueError(f"method {m!r}: its finished trials saved no samples (empty tables); {allowed}")
    if not kept:
        raise ValueError(f"no comparison group holds two of the methods {', '.join(chosen)}; groups: "
                         + "; ".join(f"{group_label(g)}: {', '.join(sorted(a))}" for g, a in by_group.items()))
    real = None
    if real_table is not None:
        real = _table_refs(real_table)
        if not real:
            raise ValueError(f"the real image table {real_table} holds no images")
    return Pool(kept, real, skipped)


def select_groups(by_group: dict, group_by: tuple[str, ...], wanted) -> dict:
    """The groups of `by_group` whose value of every field in `wanted` ((field, text) pairs) matches the text (as
    text, or as a number: `time_budget=0` picks 0.0). ValueError naming what is allowed when a field is not a
    grouping field, a value is not one of its groups', or no group has every value."""
    if not group_by:
        raise ValueError("this study has no comparison groups (every arm is compared with every other): "
                         "run the survey without --group")
    kept = dict(by_group)
    for field, text in wanted:
        if field not in group_by:
            raise ValueError(f"--group {field}={text}: {field!r} is not a grouping field of this study; "
                             f"allowed: {', '.join(group_by)}")
        values = sorted({dict(g)[field] for g in by_group}, key=lambda v: group_order(((field, v),)))
        if not any(_matches(v, text) for v in values):
            raise ValueError(f"--group {field}={text}: no comparison group has {field} = {text}; allowed: "
                             + ", ".join(f"{field}={v}" for v in values))
        kept = {g: arms for g, arms in kept.items() if _matches(dict(g)[field], text)}
    if not kept:
        raise ValueError(f"no comparison group has {', '.join(f'{f} = {t}' for f, t in wanted)}; groups: "
                         + _labels(by_group))
    return kept


def parse_group(option: str) -> tuple[str, str]:
    """'time_budget=0' -> ('time_budget', '0'); ValueError for text that is not FIELD=VALUE."""
    field, sep, value = option.partition("=")
    if not sep or not field.strip() or not value.strip():
        raise ValueError(f"--group {option!r} is not FIELD=VALUE (e.g. --group time_budget=0)")
    return field.strip(), value.strip()


def _usable(record) -> bool:
    """A trial the survey can show: finished, with its final samples saved."""
    return record.outcome == "finished" and bool(record.final_samples)


def _matches(value, text: str) -> bool:
    if str(value) == text:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return False


def _labels(by_group: dict) -> str:
    return "; ".join(group_label(g) for g in sorted(by_group, key=group_order))


def _table_refs(path) -> list[ImageRef]:
    """One ImageRef per row of an image table; FileNotFoundError / ValueError for a missing or foreign file."""
    import pyarrow.parquet as pq

    from gan.imagetable import read_image_metadata

    path = Path(path).resolve()
    read_image_metadata(path)  # raises unless it is a gansweep image table
    return [ImageRef(str(path), row) for row in range(pq.read_metadata(path).num_rows)]

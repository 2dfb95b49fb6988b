"""The survey's pool: which images it may show, grouped by method (arm) and trial, each behind an opaque id.

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


@dataclass(frozen=True)
class ImageRef:
    """Where one image is stored."""

    table: str  # absolute path of a gan.imagetable Parquet file
    row: int  # row of the image in that table


class Pool:
    """The images of a survey: per method (and `REAL`), one group of images per trial, every image behind an id.

    `draw` picks a trial of the method uniformly, then an image of that trial uniformly, so every seed weighs the
    same however many samples it saved. Ids are a fixed shuffle of 0..N-1: the same records give the same ids, and
    an id says nothing about the method behind it.
    """

    def __init__(self, groups: dict[str, list[list[ImageRef]]]):
        refs = [ref for label in sorted(groups) for trial in groups[label] for ref in trial]
        ids = list(range(len(refs)))
        random.Random(0).shuffle(ids)
        self._ref = dict(zip(ids, refs))
        self._id = {ref: i for i, ref in self._ref.items()}
        self._groups = {label: [[self._id[ref] for ref in trial] for trial in trials]
                        for label, trials in groups.items()}
        self.methods = tuple(sorted(label for label in groups if label != REAL))  # the arms compared
        self.has_real = REAL in groups
        self._png = functools.lru_cache(maxsize=4096)(self._read_png)

    def __len__(self) -> int:
        return len(self._ref)

    def draw(self, label: str, rng: random.Random) -> int:
        """The id of a random image of method `label` (or `REAL`): a random trial, then a random image of it."""
        return rng.choice(rng.choice(self._groups[label]))

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


def pool_from_records(records, methods=None, real_table=None) -> Pool:
    """The pool of a finished sweep's trial records (objects with `arm`, `seed`, `outcome`, `final_samples`).

    Only finished trials with a samples table count. `methods` restricts the survey to some arms (default: every
    arm with such a trial); `real_table` adds held-out real photos. Raises ValueError for an unknown method, fewer
    than two methods, or no usable trial, and FileNotFoundError for a samples table that is gone.
    """
    records = list(records)
    usable = [r for r in records if r.outcome == "finished" and r.final_samples]
    if not usable:
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(Counter(r.outcome for r in records).items()))
        raise ValueError(f"no finished trial with final samples in this sweep ({outcomes or 'no trials'}): "
                         "the survey needs the samples of at least two finished arms")
    available = sorted({r.arm for r in usable})
    if REAL in available:
        raise ValueError(f"an arm is called {REAL!r}, the survey's label for real photos: rename the arm")
    chosen = available if methods is None else list(dict.fromkeys(methods))
    allowed = f"methods with finished trials: {', '.join(available)}"
    for m in chosen:
        if m not in available:
            known = any(r.arm == m for r in records)
            what = "has no finished trial with samples" if known else "is not an arm of this sweep"
            raise ValueError(f"method {m!r} {what}; {allowed}")
    if len(chosen) < 2:
        raise ValueError(f"the survey compares two or more methods, got {len(chosen)}; {allowed}")

    groups = {}
    for m in chosen:
        trials = sorted((r for r in usable if r.arm == m), key=lambda r: r.seed)
        groups[m] = [refs for refs in (_table_refs(r.final_samples) for r in trials) if refs]
        if not groups[m]:
            raise ValueError(f"method {m!r}: its finished trials saved no samples (empty tables); {allowed}")
    if real_table is not None:
        real = _table_refs(real_table)
        if not real:
            raise ValueError(f"the real image table {real_table} holds no images")
        groups[REAL] = [real]
    return Pool(groups)


def _table_refs(path) -> list[ImageRef]:
    """One ImageRef per row of an image table; FileNotFoundError / ValueError for a missing or foreign file."""
    import pyarrow.parquet as pq

    from gan.imagetable import read_image_metadata

    path = Path(path).resolve()
    read_image_metadata(path)  # raises unless it is a gansweep image table
    return [ImageRef(str(path), row) for row in range(pq.read_metadata(path).num_rows)]

"""The survey's design: which two methods each of a participant's pairs compares.

Every participant gets a balanced schedule of `n_pairs` slots: the method-vs-method slots cycle through every pair of
methods (each cycle in a fresh random order), the method-vs-real slots (`n_real` of them, with `--with-real`) cycle
through every method, and the slots are then shuffled. The schedule is a function of the participant's id, so a
restarted server continues it where it stopped. Which images fill a slot, and which goes left, is drawn when the
pair is served.
"""

from __future__ import annotations

import itertools
import random

from sweep.survey.pool import REAL


def real_slots(n_pairs: int, real_share: float) -> int:
    """How many of `n_pairs` slots show a real photo: `real_share` of them, rounded, and never all of them."""
    if not 0 <= real_share < 1:
        raise ValueError(f"the share of pairs with a real photo must be in [0, 1), got {real_share}")
    return min(round(n_pairs * real_share), n_pairs - 1)


def schedule(methods: tuple[str, ...], n_pairs: int, n_real: int, participant: str) -> list[tuple[str, str]]:
    """The (method, method) or (method, REAL) comparison of each of a participant's `n_pairs` slots, in order."""
    if len(methods) < 2:
        raise ValueError(f"a survey compares two or more methods, got {list(methods)}")
    rng = random.Random(f"schedule:{participant}")
    slots = _cycle(list(itertools.combinations(methods, 2)), n_pairs - n_real, rng)
    slots += _cycle([(m, REAL) for m in methods], n_real, rng)
    rng.shuffle(slots)
    return slots


def _cycle(items: list, n: int, rng: random.Random) -> list:
    """`n` items: whole shuffled copies of `items`, the last one cut short."""
    out = []
    while len(out) < n:
        block = items[:]
        rng.shuffle(block)
        out += block
    return out[:n]

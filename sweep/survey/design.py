"""The survey's design: which comparison group, and which two methods of it, each of a participant's pairs compares.

Every participant gets a balanced schedule of `n_pairs` slots. A pair never crosses comparison groups. The
method-vs-method slots cycle through the groups (each cycle in a fresh random order), and each group's slots cycle
through every pair of its methods; the method-vs-real slots (`n_real` of them, with `--with-real`) cycle through the
groups likewise, and each group's through its methods. The slots are then shuffled. The schedule is a function of
the participant's id, so a restarted server continues it where it stopped. Which images fill a slot, and which goes
left, is drawn when the pair is served.
"""

from __future__ import annotations

import itertools
import random

from sweep.survey.pool import REAL, Group, group_label


def real_slots(n_pairs: int, real_share: float) -> int:
    """How many of `n_pairs` slots show a real photo: `real_share` of them, rounded, and never all of them."""
    if not 0 <= real_share < 1:
        raise ValueError(f"the share of pairs with a real photo must be in [0, 1), got {real_share}")
    return min(round(n_pairs * real_share), n_pairs - 1)


def schedule(comparisons: dict[Group, tuple[str, ...]], n_pairs: int, n_real: int,
             participant: str) -> list[tuple[Group, str, str]]:
    """The (group, method, method) or (group, method, REAL) comparison of each of a participant's `n_pairs` slots,
    in order. `comparisons`: each comparison group with the methods it compares (two or more)."""
    if not comparisons:
        raise ValueError("a survey needs at least one comparison group")
    for group, methods in comparisons.items():
        if len(methods) < 2:
            raise ValueError(f"a survey compares two or more methods, got {list(methods)} in {group_label(group)}")
    rng = random.Random(f"schedule:{participant}")
    groups = list(comparisons)
    slots = _within_groups(groups, {g: list(itertools.combinations(comparisons[g], 2)) for g in groups},
                           n_pairs - n_real, rng)
    slots += _within_groups(groups, {g: [(m, REAL) for m in comparisons[g]] for g in groups}, n_real, rng)
    rng.shuffle(slots)
    return slots


def _within_groups(groups: list, items: dict, n: int, rng: random.Random) -> list:
    """`n` (group, *item) slots: the groups cycled (balanced across groups), each group's items cycled in turn."""
    order = _cycle(groups, n, rng)
    per_group = {g: iter(_cycle(items[g], order.count(g), rng)) for g in groups}
    return [(g, *next(per_group[g])) for g in order]


def _cycle(items: list, n: int, rng: random.Random) -> list:
    """`n` items: whole shuffled copies of `items`, the last one cut short."""
    out = []
    while len(out) < n:
        block = items[:]
        rng.shuffle(block)
        out += block
    return out[:n]

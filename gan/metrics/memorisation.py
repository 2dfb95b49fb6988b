"""Memorisation: how much closer a generator's samples sit to its training images than fresh real images do.

In an extractor's pooled features, each held-out real image's Euclidean distance to its nearest training image gives
the distances a sample *not* copied from the training set should have. The threshold is their `QUANTILE` (5th
percentile); the score is the share of samples whose nearest-training-image distance is below it. A generator that
draws like fresh real images scores about `QUANTILE` (0.05); one that returns its training images scores 1 (distance
0). The floor (`heldout_score`) is the same rule applied to held-out images the threshold was not fitted on: the
threshold comes from one half of the held-out set and scores the other half, so it shows the score's spread at
that count. Quality metrics (FID, KID) reward memorisation; this score is read beside them.

Plain torch, no extractor: `memorisation_probe` takes features (`Extractor.features(...)["pool"]`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

QUANTILE = 0.05  # the held-out distance percentile a sample must fall below to count as memorised
MIN_HELDOUT = 4  # the fewest held-out images a probe can be fitted on (two per half)


def nearest_distance(query: torch.Tensor, train: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """(N,) Euclidean distance of each row of `query` (N, D) to its nearest row of `train` (M, D), in float64."""
    train = train.double()
    return torch.cat([torch.cdist(q.double(), train).min(dim=1).values for q in query.split(batch)]) \
        if len(query) else torch.empty(0, dtype=torch.float64)


def share_below(distances: torch.Tensor, threshold: float) -> float:
    """Share of `distances` strictly below `threshold`."""
    return float((distances < threshold).double().mean())


@dataclass(frozen=True)
class MemorisationProbe:
    """The training set's features and the held-out threshold of one reference, fitted once per input."""

    extractor: str  # extractor name the features came from
    train: torch.Tensor  # (M, D) float32 pooled features of the training images
    threshold: float  # QUANTILE of the held-out images' nearest-training-image distances
    heldout_score: float  # the floor: share of one held-out half below the other half's threshold

    def score(self, pool: torch.Tensor) -> dict[str, float]:
        """{'memorisation': share of the samples `pool` (N, D) closer to a training image than `threshold`}."""
        return {"memorisation": share_below(nearest_distance(pool, self.train), self.threshold)}


def memorisation_probe(train: torch.Tensor, heldout: torch.Tensor, extractor: str, *, seed: int = 0) -> MemorisationProbe:
    """Fit the threshold on the held-out features' distances to the training features (see the module docstring);
    ValueError with fewer than `MIN_HELDOUT` held-out images."""
    if len(heldout) < MIN_HELDOUT:
        raise ValueError(f"a memorisation probe needs at least {MIN_HELDOUT} held-out images, got {len(heldout)}")
    d = nearest_distance(heldout, train)
    threshold = float(torch.quantile(d, QUANTILE))
    order = torch.randperm(len(d), generator=torch.Generator().manual_seed(int(seed)))
    fit, scored = d[order[: len(d) // 2]], d[order[len(d) // 2:]]
    return MemorisationProbe(extractor, train.float().contiguous(), threshold,
                             share_below(scored, float(torch.quantile(fit, QUANTILE))))

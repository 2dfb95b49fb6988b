"""Reference statistics of a real image set (features and FID statistics, cached on disk), and the one call that
scores a generated sample set against them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from gan.cache import cache_root, image_hash
from gan.metrics.extractors import Extractor, get_extractor
from gan.metrics.maths import fid_statistics, metrics_from_features


@dataclass(frozen=True)
class RealStats:
    """What the metrics need from the real set, for one extractor."""

    extractor: str  # extractor name
    weights_id: str  # the extractor's weights fingerprint (Extractor.weights_id)
    key: str  # dataset key (default: sha256 of the image bytes, 16 hex)
    pool: torch.Tensor  # (N, D) float32 pooled features, for KID and precision/recall
    logits: torch.Tensor  # (N, C) float32 logits, e.g. for the real set's own IS
    mu: np.ndarray  # (D,) float64 FID mean
    sigma: np.ndarray  # (D, D) float64 FID covariance

    def __len__(self) -> int:
        return int(self.pool.shape[0])

    def to_dict(self) -> dict:
        """Tensors, strings only: what `torch.load(weights_only=True)` reads back."""
        return {"extractor": self.extractor, "weights_id": self.weights_id, "key": self.key, "pool": self.pool,
                "logits": self.logits, "mu": torch.from_numpy(self.mu), "sigma": torch.from_numpy(self.sigma)}

    @classmethod
    def from_dict(cls, d: dict) -> "RealStats":
        return cls(d["extractor"], d["weights_id"], d["key"], d["pool"], d["logits"], d["mu"].numpy(),
                   d["sigma"].numpy())

    @classmethod
    def from_features(cls, features: dict, extractor: Extractor, key: str) -> "RealStats":
        stats = fid_statistics(features["pool"])
        return cls(extractor.name, extractor.weights_id, key, features["pool"], features["logits"],
                   stats["mu"], stats["sigma"])


_REAL_MEMO: dict[tuple[str, str, str], RealStats] = {}


def reference_stats(real_uint8: torch.Tensor, extractor: Extractor | str, *, cache_dir=None, key: str | None = None,
                    batch_size: int = 64) -> RealStats:
    """Features and FID statistics of the real set, computed once per (dataset key, extractor weights).

    Memoised in-process and cached on disk at ``<cache root>/stats/<key>-<extractor>.pt`` (written atomically, read
    with ``weights_only=True``). A cache file made with other weights of the same extractor is recomputed.
    """
    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    key = key or image_hash(real_uint8)
    memo_key = (key, extractor.name, extractor.weights_id)
    if memo_key in _REAL_MEMO:
        return _REAL_MEMO[memo_key]
    path = cache_root(cache_dir) / "stats" / f"{key}-{extractor.name}.pt"
    stats = None
    if path.is_file():
        try:
            stats = RealStats.from_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception:  # unreadable or old-format cache: recompute
            stats = None
        if stats is not None and (stats.weights_id != extractor.weights_id or stats.extractor != extractor.name):
            stats = None
    if stats is None:
        if len(real_uint8) < 2:
            raise ValueError(f"the reference set needs at least 2 images, got {len(real_uint8)}")
        stats = RealStats.from_features(extractor.features(real_uint8, batch_size), extractor, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(stats.to_dict(), tmp)
        os.replace(tmp, path)
    _REAL_MEMO[memo_key] = stats
    return stats


def compute_metrics(fake_uint8: torch.Tensor, extractor: Extractor | str, reference: RealStats | None = None, *,
                    splits: int = 10, seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """Score the full generated sample set ``fake_uint8`` (N, 3, H, W) with one pass of ``extractor``.

    Returns e.g. ``{'is_mean_effnet': ..., 'is_std_effnet': ..., 'fid_effnet': ..., 'kid_mean_effnet': ...,
    'kid_std_effnet': ..., 'precision_effnet': ..., 'recall_effnet': ...}`` (IS only when ``reference`` is None).
    """
    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    if reference is not None and (reference.extractor, reference.weights_id) != (extractor.name,
                                                                                extractor.weights_id):
        raise ValueError(f"reference statistics were made with {reference.extractor!r} "
                         f"(weights {reference.weights_id}), not {extractor.name!r} (weights {extractor.weights_id})")
    features = extractor.features(fake_uint8, batch_size)
    return metrics_from_features(features, extractor.name, reference, splits=splits, seed=seed)

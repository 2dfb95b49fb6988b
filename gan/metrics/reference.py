"""Reference statistics of a real image set (features and FID statistics, cached on disk), and the one call that
scores a generated sample set against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from gan.cache import cache_root, image_hash, read_cached, write_cached
from gan.metrics.extractors import Extractor, get_extractor
from gan.metrics.maths import FrechetReference, fid_statistics, metrics_from_features


@dataclass(frozen=True, eq=False)
class RealStats:
    """What the metrics need from the real set, for one extractor: made once per sweep and shipped to every trial.

    ``frechet`` (the real side of FID, factored once) is computed from ``mu``/``sigma`` when not given.
    ``leakage`` is an optional `gan.leakage.LeakageProbe` fitted on this real set (`gan.leakage.with_leakage`
    attaches one); `compute_metrics` then also reports the leakage keys. The probe is cached by `gan.leakage`, not
    in this object's cache file.
    """

    extractor: str  # extractor name
    weights_id: str  # the extractor's weights fingerprint (Extractor.weights_id)
    key: str  # dataset key (default: sha256 of the image bytes, 16 hex)
    pool: torch.Tensor  # (N, D) float32 pooled features, for KID and precision/recall
    logits: torch.Tensor  # (N, C) float32 logits, e.g. for the real set's own IS
    mu: np.ndarray  # (D,) float64 FID mean
    sigma: np.ndarray  # (D, D) float64 FID covariance
    frechet: FrechetReference | None = field(default=None, repr=False)  # fast-FID real side (from mu, sigma)
    leakage: object | None = field(default=None, repr=False)  # a gan.leakage.LeakageProbe of this real set, or None
    memorisation: object | None = field(default=None, repr=False)  # a gan.metrics.memorisation.MemorisationProbe

    def __post_init__(self):
        if self.frechet is None:
            object.__setattr__(self, "frechet", FrechetReference.from_statistics(self.mu, self.sigma))

    def __len__(self) -> int:
        return int(self.pool.shape[0])

    def to_dict(self) -> dict:
        """Tensors, strings, floats only: what `torch.load(weights_only=True)` reads back (the probe excluded)."""
        return {"extractor": self.extractor, "weights_id": self.weights_id, "key": self.key, "pool": self.pool,
                "logits": self.logits, "mu": torch.from_numpy(self.mu), "sigma": torch.from_numpy(self.sigma),
                "fid_root": self.frechet.root, "fid_trace": self.frechet.trace}

    @classmethod
    def from_dict(cls, d: dict) -> "RealStats":
        mu = d["mu"].numpy()
        frechet = None  # a cache file from before the fast FID: factored again here
        if "fid_root" in d:
            frechet = FrechetReference(torch.from_numpy(mu).double(), d["fid_root"], float(d["fid_trace"]))
        return cls(d["extractor"], d["weights_id"], d["key"], d["pool"], d["logits"], mu, d["sigma"].numpy(),
                   frechet)

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
    stats = read_cached(path, RealStats.from_dict,
                        lambda s: (s.extractor, s.weights_id) == (extractor.name, extractor.weights_id))
    if stats is None:
        if len(real_uint8) < 2:
            raise ValueError(f"the reference set needs at least 2 images, got {len(real_uint8)}")
        stats = RealStats.from_features(extractor.features(real_uint8, batch_size), extractor, key)
        write_cached(path, stats.to_dict())
    _REAL_MEMO[memo_key] = stats
    return stats


def compute_metrics(fake_uint8: torch.Tensor, extractor: Extractor | str, reference: RealStats | None = None, *,
                    splits: int = 10, seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """Score the full generated sample set ``fake_uint8`` (N, 3, H, W) with one pass of ``extractor``.

    Returns e.g. ``{'is_mean_effnet': ..., 'is_std_effnet': ..., 'fid_effnet': ..., 'kid_mean_effnet': ...,
    'kid_std_effnet': ..., 'precision_effnet': ..., 'recall_effnet': ...}`` (IS only when ``reference`` is None),
    plus the leakage keys of `gan.metrics.schema.LEAKAGE_KEYS` when ``reference.leakage`` holds a probe (it reads
    the same images' luma pixels, `gan.leakage`). FID is computed
    on the extractor's device. See `gan.metrics.maths.metrics_from_features` for each metric's protocol.
    """
    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    if reference is not None and (reference.extractor, reference.weights_id) != (extractor.name,
                                                                                extractor.weights_id):
        raise ValueError(f"reference statistics were made with {reference.extractor!r} "
                         f"(weights {reference.weights_id}), not {extractor.name!r} (weights {extractor.weights_id})")
    features = extractor.features(fake_uint8, batch_size)
    out = metrics_from_features(features, extractor.name, reference, splits=splits, seed=seed,
                                device=extractor.device)
    if reference is not None and reference.leakage is not None:
        out.update(reference.leakage.score(fake_uint8))
    return out

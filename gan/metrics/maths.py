"""features -> metric: pure functions over CPU tensors, torch-fidelity's own maths underneath.

Each takes the features of the full sample set (`Extractor.features`); never call one on a training batch.
"""

from __future__ import annotations

import numpy as np
import torch

from gan.metrics.schema import metric_key

KID_SUBSETS = 100  # torch-fidelity's default number of KID subsets
KID_SUBSET_SIZE = 1000  # torch-fidelity's default KID subset size (clamped to the sample counts)
PRC_NEIGHBORHOOD = 3  # torch-fidelity's default k of the k-NN balls in precision/recall (clamped to n - 1)


def inception_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """IS = exp(mean_i KL(p(y|x_i) || p(y))) over ``splits`` chunks: (mean, std) across the chunks.

    ``logits`` (N, C) are unnormalised (softmax is applied inside; log-probabilities work as logits). ``splits`` is
    clamped to [1, N]. Samples are shuffled with ``seed`` before splitting, as torch-fidelity does.
    """
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    splits = max(1, min(int(splits), len(logits)))
    out = isc_features_to_metric(logits.cpu(), splits=splits, shuffle=True, rng_seed=seed)
    return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]


def fid_statistics(pool: torch.Tensor) -> dict[str, np.ndarray]:
    """FID statistics of pooled features: ``{'mu': (D,), 'sigma': (D, D)}``, float64."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(pool.cpu().double())


def frechet_distance(stats_fake: dict, stats_real: dict) -> float:
    """FID between two `fid_statistics` results."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    return fid_statistics_to_metric(stats_fake, stats_real, verbose=False)[KEY_METRIC_FID]


def kernel_distance(pool_fake: torch.Tensor, pool_real: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    """KID (cubic polynomial kernel MMD^2, unbiased): (mean, std) over `KID_SUBSETS` random subsets.

    The subset size is torch-fidelity's 1000, clamped to the smaller sample count (so small sets work).
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(KID_SUBSET_SIZE, len(pool_fake), len(pool_real))
    out = kid_features_to_metric(pool_fake.cpu(), pool_real.cpu(), kid_subsets=KID_SUBSETS, kid_subset_size=size,
                                 rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def precision_recall(pool_fake: torch.Tensor, pool_real: torch.Tensor) -> tuple[float, float]:
    """Improved precision/recall (Kynkaanniemi et al. 2019) with k-NN balls, k = 3 clamped to n - 1."""
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    k = min(PRC_NEIGHBORHOOD, len(pool_fake) - 1, len(pool_real) - 1)
    out = prc_features_to_metric(pool_fake.cpu().float(), pool_real.cpu().float(), prc_neighborhood=k,
                                 save_cpu_ram=False, verbose=False)
    return out[KEY_METRIC_PRECISION], out[KEY_METRIC_RECALL]


def metrics_from_features(features: dict, extractor: str, reference=None, *, splits: int = 10,
                          seed: int = 0) -> dict[str, float]:
    """All metrics from one set of generated-image features (`Extractor.features`); keys end in ``_<extractor>``.

    Always ``is_mean``/``is_std``; with ``reference`` also ``fid``, ``kid_mean``, ``kid_std``, ``precision``,
    ``recall``.
    """
    out = {}
    out["is_mean"], out["is_std"] = inception_score(features["logits"], splits=splits, seed=seed)
    if reference is not None:
        if reference.extractor != extractor:
            raise ValueError(f"reference statistics were made with {reference.extractor!r}, not {extractor!r}")
        pool = features["pool"]
        if len(pool) < 2:
            raise ValueError(f"FID/KID/precision/recall need at least 2 generated images, got {len(pool)}")
        out["fid"] = frechet_distance(fid_statistics(pool), {"mu": reference.mu, "sigma": reference.sigma})
        out["kid_mean"], out["kid_std"] = kernel_distance(pool, reference.pool, seed=seed)
        out["precision"], out["recall"] = precision_recall(pool, reference.pool)
    return {metric_key(k, extractor): float(v) for k, v in out.items()}

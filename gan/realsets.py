"""Real image sets: the one fixed resize, preprocessing, the seeded draw of a source's images, the training/held-out
split, and the set cache.

`load_real` draws `n_real` images of a source (`gan.sources`): a seeded `randperm` over the source's full ordering
fixes the order, and images are decoded in that order until `n_real` have been read (unreadable files are skipped and
counted in one `SkippedImages` warning). Only those images are decoded, so a 200k-image CelebA stays cheap. Because
the draw is a prefix of one permutation, the set for `n_real=500` is the first half of the set for `n_real=1000` with
the same seed.

`load_split` also draws a *held-out* set: the next images of the same seeded order after the training ones, which
the GAN never sees (the metrics' reference). A source too small to spare them gives fewer (possibly none). The
`split` (`SPLITS`) decides which images may be held out: `identity` (the default for CelebA and LFW) skips every
image whose person (`Catalog.group`) is in the training set, so no one is on both sides; `subfolder` (folders) does
the same by top sub-folder; `image` holds out any image. The training set is the same under every split.

Preprocessing: centre crop to a square (the source's `Catalog.crop`, else the largest centred square), then bicubic
resize with antialiasing (`to_size`: torchvision.transforms.v2.functional.resize on the uint8 image, always on the
CPU, where torchvision uses torch's native uint8 kernel, the PIL-compatible one; so the result is the same on every
device) to `image_size`. Grey images become 3 channels. `to_size` is the one resize of gansweep: study 2 also uses it
to make its 64x64 and 32x32 training sets from the 128x128 real set and to bring 32x32 and 64x64 samples to 128x128.

Prepared sets are cached as Parquet image tables (`gan.imagetable`) under `<cache root>/sets/<hash>.parquet`; the
hash covers everything that made the set (see `_cache_key`), so a changed folder or a new preprocessing version misses
the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import torch

from gan.cache import cache_root
from gan.imagetable import ImageSet, read_image_table, write_image_table
from gan.sources import CELEBA_CROP, LFW_CROP, SOURCES, Catalog, parse_source, resolve_source

# Bump when preprocessing changes: it is part of every cache key, so old cache entries are simply not found.
FORMAT_VERSION = 1
INTERPOLATION = "bicubic"  # with antialias=True
RESIZE = "bicubic, antialias, uint8 (torchvision resize on the CPU)"  # names `to_size` in reports
SHOWN_SKIPPED = 3  # unreadable files named in a message (the rest are counted)


class SkippedImages(UserWarning):
    """Some image files of a source could not be decoded and were left out of a set that is still complete."""


def to_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """The one fixed resize (`RESIZE`): uint8 images (..., 3, H, W) -> uint8 (..., 3, size, size), bicubic with
    antialiasing. Computed on the CPU, where torchvision resizes uint8 with torch's native (PIL-compatible) kernel,
    so it gives the same pixels whatever device the images live on; the result goes back to their device."""
    import torchvision.transforms.v2.functional as TF  # here: a second of import that `gansweep --help` never needs
    from torchvision.transforms import InterpolationMode

    if images.dtype != torch.uint8:
        raise ValueError(f"to_size takes uint8 images, got {images.dtype}")
    if tuple(images.shape[-2:]) == (size, size):
        return images
    out = TF.resize(images.cpu(), [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return out.to(images.device)


def preprocess(img: torch.Tensor, image_size: int, crop: int | None = None) -> torch.Tensor:
    """uint8 (3,h,w) -> uint8 (3,S,S): centre crop to a square (side `crop`, capped at the short side; None = the
    short side), then the fixed bicubic resize (`to_size`)."""
    import torchvision.transforms.v2.functional as TF

    side = min(img.shape[-2:])
    side = side if crop is None else min(crop, side)
    return to_size(TF.center_crop(img, [side, side]), image_size)


def _skipped_text(skipped: list[str]) -> str:
    """'2 unreadable image file(s): a.png (UnidentifiedImageError), b.png (...)', the first few named."""
    shown = ", ".join(skipped[:SHOWN_SKIPPED]) + (", ..." if len(skipped) > SHOWN_SKIPPED else "")
    return f"{len(skipped)} unreadable image file(s): {shown}"


SPLITS = ("auto", "identity", "subfolder", "image")  # `auto`: identity where the source knows people, else image
IDENTITY_SOURCES = ("celeba", "lfw")  # sources whose Catalog.group is a person


def resolve_split(spec: str, split: str = "auto") -> str:
    """The split a source gets: `auto` -> identity for celeba/lfw, image otherwise. ValueError (one line) for an
    unknown split or one the source cannot make."""
    kind = parse_source(spec).kind
    allowed = ("identity", "image") if kind in IDENTITY_SOURCES else ("subfolder", "image") if kind == "folder" \
        else ("image",)
    if split == "auto":
        return "identity" if kind in IDENTITY_SOURCES else "image"
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is unknown; allowed: {', '.join(SPLITS)}")
    if split not in allowed:
        needs = "celeba, lfw" if split == "identity" else "folder"
        raise ValueError(f"split {split!r} needs a source that knows it ({needs}); {kind} allows: auto, "
                         f"{', '.join(allowed)}")
    return split


def draw(catalog: Catalog, n: int, image_size: int, seed: int, *, need: int | None = None,
         disjoint: bool = False) -> ImageSet:
    """Decode up to `n` images of the catalog in seeded-permutation order, skipping unreadable ones.

    The first `need` (default: all `n`) are the training images; with `disjoint`, an image after them whose
    `Catalog.group` is among the training images' is passed over. Fewer than `need` readable images is a ValueError
    whose one line also names the unreadable files; between `need` and `n`, the set is short. A complete set with
    files skipped warns once (`SkippedImages`).
    """
    need = n if need is None else need
    order = torch.randperm(catalog.size, generator=torch.Generator().manual_seed(int(seed))).tolist()
    images, index, skipped, seen = [], [], [], set()
    for i in order:
        if len(images) == n:
            break
        if disjoint and len(images) >= need and catalog.group(i) in seen:
            continue
        try:
            img = catalog.decode(i)
        except (OSError, ValueError, SyntaxError) as e:  # PIL: truncated/unidentified files, bad headers
            skipped.append(f"{catalog.name(i)} ({type(e).__name__})")
            continue
        images.append(preprocess(img, image_size, catalog.crop))
        index.append(i)
        if disjoint and len(images) <= need:
            seen.add(catalog.group(i))
    if len(images) < need:
        readable = catalog.size - len(skipped)
        why = f"; skipped {_skipped_text(skipped)}" if skipped else ""
        raise ValueError(f"asked for n_real={need} images but {catalog.where} has only {readable} readable "
                         f"(of {catalog.size}){why}")
    if skipped:
        warnings.warn(f"skipped {_skipped_text(skipped)} in {catalog.where}", SkippedImages, stacklevel=3)
    stacked = torch.stack(images).contiguous() if images else torch.empty(0, 3, image_size, image_size,
                                                                           dtype=torch.uint8)
    return ImageSet(images=stacked, source=("real",) * len(images), da_type=("none",) * len(images),
                    index=tuple(index))


def _cache_key(spec: str, n: int, image_size: int, seed: int, fingerprint: list, split: tuple = ()) -> str:
    """sha256 (16 hex) over everything that made the set: source, count, size, seed, preprocessing, files, and
    (for a disjoint split) the split and the training count it is disjoint from."""
    payload = dict(format=FORMAT_VERSION, source=spec, n_real=n, image_size=image_size, seed=seed,
                   interpolation=INTERPOLATION, celeba_crop=CELEBA_CROP, lfw_crop=LFW_CROP, files=fingerprint)
    if split:
        payload["split"] = list(split)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _check_counts(n_real, n_heldout, image_size) -> None:
    for name, value, least in (("n_real", n_real, 1), ("n_heldout", n_heldout, 0), ("image_size", image_size, 1)):
        if isinstance(value, bool) or int(value) != value or value < least:
            what = "a positive" if least else "a non-negative"
            raise ValueError(f"{name} must be {what} integer, got {value}")


def load_split(spec: str, n_real: int, n_heldout: int, image_size: int, seed: int, *, download: bool = False,
               cache_dir: str | os.PathLike | bool | None = None, split: str = "auto") -> tuple[ImageSet, ImageSet]:
    """The training images and the held-out images of one source, from one seeded order.

    The first `n_real` readable images of the seeded permutation are the training set (exactly what `load_real`
    gives); the next up to `n_heldout` readable ones are held out. A source with fewer images gives a shorter
    held-out set (possibly empty); fewer than `n_real` readable images is a ValueError. `split` (`resolve_split`)
    decides which images may be held out. `cache_dir`: None or True =
    the cache root (`gan.cache.cache_root`); a path = that folder; False = no cache. The embedded sources are never
    cached (recomputing them is faster than reading a file).
    """
    _check_counts(n_real, n_heldout, image_size)
    n_real, n_heldout, image_size, seed = int(n_real), int(n_heldout), int(image_size), int(seed)
    src = parse_source(resolve_source(spec))
    disjoint = resolve_split(spec, split) != "image" and n_heldout > 0
    kind = SOURCES[src.kind]
    catalog = None
    if download and kind.downloads:
        try:
            kind.fingerprint(src)  # files present: nothing to fetch
        except FileNotFoundError:
            catalog = kind.open(src, download=True)  # torchvision fetches and verifies them
    path = None
    total = n_real + n_heldout
    if kind.cache and cache_dir is not False:
        base = cache_root(None if cache_dir in (None, True) else cache_dir)
        key = _cache_key(src.spec, total, image_size, seed, kind.fingerprint(src),
                         (resolve_split(spec, split), n_real) if disjoint else ())
        path = base / "sets" / f"{key}.parquet"
    if path is not None and path.exists():
        drawn = read_image_table(path)
    else:
        catalog = catalog or kind.open(src)
        drawn = draw(catalog, total, image_size, seed, need=n_real, disjoint=disjoint)
        if path is not None:
            write_image_table(path, drawn, metadata=dict(source=src.spec, n=total, image_size=image_size,
                                                         seed=seed, format=FORMAT_VERSION))
    return _take(drawn, 0, n_real), _take(drawn, n_real, total)


def _take(s: ImageSet, start: int, stop: int) -> ImageSet:
    return ImageSet(s.images[start:stop].contiguous(), s.source[start:stop], s.da_type[start:stop],
                    s.index[start:stop])


def load_real(spec: str, n_real: int, image_size: int, seed: int, *, download: bool = False,
              cache_dir: str | os.PathLike | bool | None = None) -> ImageSet:
    """The real training images: `n_real` images of `spec` at `image_size`, chosen deterministically from `seed`.

    Returns an ImageSet with source="real", da_type="none" and index = the image's index in the source's full
    ordering (for oxford-pet:ROOT:BREED, the breed's images in trainval-then-test order). Unreadable files are
    skipped (one warning with the count); fewer readable images than `n_real` is a ValueError. Because the draw is a
    prefix of one permutation, the set for `n_real=500` is the first half of the set for `n_real=1000`.
    """
    return load_split(spec, n_real, 0, image_size, seed, download=download, cache_dir=cache_dir)[0]

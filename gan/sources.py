"""Image sources: what a source string means, and how each kind is opened into a `Catalog` of decodable images.

A *source string* says where the real images come from:

    lfw-subset                  the 100 faces of scikit-image's LFW subset (embedded, no files needed)
    skimage-photos              277 128x128 tiles of the photos scikit-image ships (embedded, see below)
    folder:PATH                 every jpg/jpeg/png/webp/bmp under PATH, recursive, in sorted path order
    celeba:ROOT                 torchvision CelebA (split 'all'), files in ROOT/celeba/
    oxford-pet:ROOT[:BREED]     torchvision OxfordIIITPet (trainval then test), optionally one breed
    lfw:ROOT                    torchvision LFWPeople (10fold, funneled), files in ROOT/lfw-py/

`SOURCES` maps each kind to how it is opened (a `Catalog`: the source's full ordering, how to decode image i, and
the centre crop its images get, and who each image shows where the source knows it: `Catalog.group`, CelebA's
identity_CelebA.txt, LFW's person folders, a folder's top sub-folders; the embedded LFW subset carries no names)
and to a cheap fingerprint of its files (what the set cache keys on). Drawing a
seeded set from a catalog, preprocessing and caching it is `gan.realsets`' job.

Centre crops (`Catalog.crop`): CelebA 178x178, the full width of its 178x218 aligned faces, as in the PyTorch DCGAN
tutorial; LFW 150x150 of the 250x250 funneled images, which keeps the head and drops most of the background; pets
and folders: the largest centred square.

`skimage-photos` exists for study 2's CPU demo, which needs real detail at 128x128 (the LFW subset is 25x25: blown
up to 128, it leaves a super-resolution model nothing to recover). It is every non-overlapping 128x128 tile of a
centred grid over each photo of `SKIMAGE_PHOTOS` (all shipped inside the scikit-image wheel, no download), photo by
photo in that order and row by row within a photo: 171 colour tiles (astronaut, chelsea, coffee, rocket,
hubble_deep_field, immunohistochemistry, the central 896x896 of retina, the left view of stereo_motorcycle) and 106
grey ones (camera, moon, coins, brick, grass, gravel, cell) as 3 equal channels. The tiles are native pixels (no
resize at 128x128). Because tiles do not overlap, a held-out tile shares no pixel with a training tile, but held-out
tiles do come from the same photos (and the astronaut's, the cat's and the coffee's scenes) as training ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gan.imagetable import IMAGE_EXTENSIONS, decode_image, list_image_files, pil_to_uint8

CELEBA_CROP = 178  # centre square of CelebA's 178x218 aligned faces
LFW_CROP = 150  # centre square of LFW's 250x250 (funneled) images


# ----------------------------------------------------------------------------------------------------------------------
# Source strings


@dataclass(frozen=True)
class Source:
    """A parsed source string. `root` is None for the embedded sources; `breed` only for oxford-pet."""

    kind: str  # a key of SOURCES
    root: str | None = None  # PATH / ROOT as written (resolve_source makes it absolute)
    breed: str | None = None  # oxford-pet breed as written, e.g. "Pomeranian" or "american_bulldog"

    @property
    def spec(self) -> str:
        """The source string this parses from."""
        parts = [self.kind] + [p for p in (self.root, self.breed) if p is not None]
        return ":".join(parts)


def _allowed() -> str:
    return ", ".join(kind.syntax for kind in SOURCES.values())


def parse_source(spec: str) -> Source:
    """Validate a source string's syntax (no I/O). Raises ValueError naming the allowed forms."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty dataset source; allowed: {_allowed()}")
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    if kind not in SOURCES:
        raise ValueError(f"unknown dataset source {spec!r}; allowed: {_allowed()}")
    if SOURCES[kind].embedded:
        if sep:
            raise ValueError(f"dataset source {kind!r} takes no path, got {spec!r}")
        return Source(kind)
    if not rest:
        raise ValueError(f"dataset source {kind!r} needs a path: {SOURCES[kind].syntax}")
    breed = None
    if kind == "oxford-pet" and ":" in rest:
        # oxford-pet:ROOT:BREED -- the breed is after the last colon (a breed never holds a slash).
        head, _, tail = rest.rpartition(":")
        if head and tail and not any(c in tail for c in "/\\"):
            rest, breed = head, tail
        elif head and not tail:
            raise ValueError(f"empty breed in {spec!r}; use oxford-pet:ROOT or oxford-pet:ROOT:BREED")
    return Source(kind, root=rest, breed=breed)


def resolve_source(spec: str) -> str:
    """The same source string with PATH/ROOT made absolute (call before Ray chdirs into trial dirs)."""
    src = parse_source(spec)
    if src.root is None:
        return src.spec
    root = os.path.abspath(os.path.expanduser(src.root))
    return Source(src.kind, root, src.breed).spec


# ----------------------------------------------------------------------------------------------------------------------
# Catalogs: an opened source that knows its size and how to decode one image


@dataclass
class Catalog:
    """An opened source: its full ordering, and how to decode one image of it."""

    size: int  # images in the source's full ordering
    decode: Callable[[int], torch.Tensor]  # i -> uint8 (3,h,w); raises OSError/ValueError on an unreadable file
    crop: int | None  # centre-crop side before the resize; None = the largest centred square
    where: str  # for messages: the folder or dataset this is
    name: Callable[[int], str] = str  # i -> a human name for image i (file name), for the skip warning
    group: Callable[[int], str] | None = None  # i -> its person (celeba, lfw) or sub-folder (folder); None: unknown


def _decode_item(dataset, i: int) -> torch.Tensor:
    """Decode item i of a torchvision dataset whose first element is a PIL image."""
    return pil_to_uint8(dataset[i][0])


def _missing(base: Path, names) -> list[str]:
    return [n for n in names if not (base / n).exists()]


# --- lfw-subset ---------------------------------------------------------------------------------------------------------

def _open_lfw_subset(src: Source) -> Catalog:
    """The 100 face images of skimage.data.lfw_subset() (25x25 grey float in [0,1]; the other 100 are non-faces)."""
    from skimage.data import lfw_subset

    faces = np.asarray(lfw_subset()[:100], dtype=np.float64)
    grey = torch.from_numpy(np.round(faces * 255.0).clip(0, 255).astype(np.uint8))  # (100, 25, 25)
    return Catalog(size=grey.shape[0], decode=lambda i: grey[i].expand(3, -1, -1).contiguous(), crop=None,
                   where="skimage.data.lfw_subset()", name=lambda i: f"face {i}")


def _fingerprint_lfw_subset(src: Source) -> list:
    import skimage

    return [skimage.__version__]


# --- skimage-photos -----------------------------------------------------------------------------------------------------

PHOTO_TILE = 128  # side of a skimage-photos tile
# (skimage.data function, side of the centred square the tiles are cut from, or None for the whole photo)
SKIMAGE_PHOTOS: tuple[tuple[str, int | None], ...] = (
    ("astronaut", None), ("chelsea", None), ("coffee", None), ("rocket", None), ("hubble_deep_field", None),
    ("immunohistochemistry", None), ("retina", 896),  # retina: the centre of the fundus, no black surround
    ("stereo_motorcycle", None),  # its left view
    ("camera", None), ("moon", None), ("coins", None), ("brick", None), ("grass", None), ("gravel", None),
    ("cell", None),
)


def _photo(name: str, square: int | None) -> torch.Tensor:
    """One skimage.data photo as uint8 (3,h,w), cut to its centred `square` if given."""
    import skimage.data

    arr = getattr(skimage.data, name)()
    arr = arr[0] if name == "stereo_motorcycle" else arr  # (left, right, disparity): the left view
    img = torch.from_numpy(np.ascontiguousarray(arr))
    img = img.permute(2, 0, 1) if img.ndim == 3 else img.expand(3, -1, -1)
    if square is not None:
        top, left = (img.shape[1] - square) // 2, (img.shape[2] - square) // 2
        img = img[:, top:top + square, left:left + square]
    return img.contiguous()


def _tiles(img: torch.Tensor, side: int) -> list[torch.Tensor]:
    """Every non-overlapping side x side tile of a grid centred on the image, row by row."""
    rows, cols = img.shape[1] // side, img.shape[2] // side
    top, left = (img.shape[1] - rows * side) // 2, (img.shape[2] - cols * side) // 2
    return [img[:, top + r * side:top + (r + 1) * side, left + c * side:left + (c + 1) * side].contiguous()
            for r in range(rows) for c in range(cols)]


def _open_skimage_photos(src: Source) -> Catalog:
    tiles, names = [], []
    for name, square in SKIMAGE_PHOTOS:
        cut = _tiles(_photo(name, square), PHOTO_TILE)
        tiles += cut
        names += [f"{name} tile {k}" for k in range(len(cut))]
    return Catalog(size=len(tiles), decode=lambda i: tiles[i], crop=None, where="skimage.data photos",
                   name=lambda i: names[i])


def _fingerprint_skimage_photos(src: Source) -> list:
    import skimage

    return [skimage.__version__, PHOTO_TILE, [list(p) for p in SKIMAGE_PHOTOS]]


# --- folder:PATH --------------------------------------------------------------------------------------------------------

def _open_folder(src: Source) -> Catalog:
    files = list_image_files(src.root)
    if not files:
        raise ValueError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {src.root}")
    rel = [f.relative_to(src.root) for f in files]  # group: the top sub-folder (a file at the top is its own)
    return Catalog(size=len(files), decode=lambda i: decode_image(files[i]), crop=None, where=src.root,
                   name=lambda i: rel[i].as_posix(), group=lambda i: rel[i].parts[0])


def _fingerprint_folder(src: Source) -> list:
    """File list with sizes and mtimes: any added, removed or rewritten file changes the cache key."""
    out = []
    for p in list_image_files(src.root):
        st = p.stat()
        out.append([p.relative_to(src.root).as_posix(), st.st_size, st.st_mtime_ns])
    return out


# --- celeba:ROOT --------------------------------------------------------------------------------------------------------

CELEBA_FILES = ("img_align_celeba", "list_eval_partition.txt", "identity_CelebA.txt", "list_attr_celeba.txt",
                "list_bbox_celeba.txt", "list_landmarks_align_celeba.txt")


def _check_celeba(src: Source) -> Path:
    base = Path(src.root) / "celeba"
    missing = _missing(base, CELEBA_FILES)
    if missing:
        raise FileNotFoundError(
            f"CelebA not found: torchvision expects {base}/ to hold img_align_celeba/ (the aligned jpgs) and "
            f"{', '.join(CELEBA_FILES[1:])}; missing: {', '.join(missing)} (pass --download / download=True to fetch)")
    return base


def _open_celeba(src: Source, download: bool = False) -> Catalog:
    from torchvision.datasets import CelebA

    if not download:
        _check_celeba(src)
    ds = _torchvision(lambda: CelebA(src.root, split="all", target_type=[], download=download),
                      f"{src.root}/celeba", "its list files must be the original Google Drive releases "
                      "(torchvision checks their md5; Kaggle's CSV versions do not match)")
    people = ds.identity[:, 0].tolist()  # identity_CelebA.txt, which torchvision reads whatever target_type is
    return Catalog(size=len(ds), decode=lambda i: _decode_item(ds, i), crop=CELEBA_CROP, where=f"{src.root}/celeba",
                   name=lambda i: ds.filename[i], group=lambda i: f"celeba identity {people[i]}")


def _fingerprint_celeba(src: Source) -> list:
    base = _check_celeba(src)
    return _stat_files(base, CELEBA_FILES[1:])


# --- oxford-pet:ROOT[:BREED] --------------------------------------------------------------------------------------------

PET_SPLITS = ("trainval", "test")


def _check_pet(src: Source) -> Path:
    base = Path(src.root) / "oxford-iiit-pet"
    need = ["images", *(f"annotations/{s}.txt" for s in PET_SPLITS)]
    missing = _missing(base, need)
    if missing:
        raise FileNotFoundError(
            f"Oxford-IIIT Pet not found: torchvision expects {base}/images/*.jpg and "
            f"{base}/annotations/{{trainval,test}}.txt; missing: {', '.join(missing)} "
            "(pass --download / download=True to fetch)")
    return base


def _norm_breed(name: str) -> str:
    """'American_Bulldog', 'american bulldog', 'american-bulldog' -> 'americanbulldog'."""
    return "".join(c for c in name.lower() if c.isalnum())


def _pet_breed(ds, i: int) -> str:
    """Breed of item i, named as torchvision names its classes: 'american_bulldog_12.jpg' -> 'American Bulldog'.

    Read from the file name (torchvision's private `_images` list) rather than `classes[_labels[i]]`, whose
    positions only line up with the labels when a split holds every breed.
    """
    return " ".join(part.title() for part in ds._images[i].stem.rsplit("_", 1)[0].split("_"))


def _open_pet(src: Source, download: bool = False) -> Catalog:
    """Both splits (trainval then test): the study needed every Pomeranian there is (about 200)."""
    from torchvision.datasets import OxfordIIITPet

    if not download:
        _check_pet(src)
    where = f"{src.root}/oxford-iiit-pet"
    splits = [_torchvision(lambda s=s: OxfordIIITPet(src.root, split=s, target_types="category", download=download),
                           where, "") for s in PET_SPLITS]
    items = [(ds, i) for ds in splits for i in range(len(ds))]
    if src.breed is not None:
        breeds = [_pet_breed(ds, i) for ds, i in items]
        classes = sorted(set(breeds))
        match = [c for c in classes if _norm_breed(c) == _norm_breed(src.breed)]
        if not match:
            raise ValueError(f"unknown Oxford-IIIT Pet breed {src.breed!r}; available: {', '.join(classes)}")
        items = [item for item, b in zip(items, breeds) if b == match[0]]
        where = f"{where} ({match[0]})"
    return Catalog(size=len(items), decode=lambda k: _decode_item(items[k][0], items[k][1]), crop=None, where=where,
                   name=lambda k: items[k][0]._images[items[k][1]].name)


def _fingerprint_pet(src: Source) -> list:
    base = _check_pet(src)
    return _stat_files(base, [f"annotations/{s}.txt" for s in PET_SPLITS])


# --- lfw:ROOT -----------------------------------------------------------------------------------------------------------

LFW_FILES = ("lfw_funneled", "lfw-funneled.tgz", "people.txt", "lfw-names.txt")


def _check_lfw(src: Source) -> Path:
    base = Path(src.root) / "lfw-py"
    missing = _missing(base, LFW_FILES)
    if missing:
        raise FileNotFoundError(
            f"LFW not found: torchvision's LFWPeople expects {base}/ to hold lfw_funneled/ (extracted), "
            f"lfw-funneled.tgz (it checks the archive's md5), people.txt and lfw-names.txt; missing: "
            f"{', '.join(missing)} (torchvision can no longer download LFW: place the files by hand)")
    return base


def _open_lfw(src: Source, download: bool = False) -> Catalog:
    from torchvision.datasets import LFWPeople

    _check_lfw(src)  # download=True cannot help: torchvision dropped LFW downloads
    ds = _torchvision(lambda: LFWPeople(src.root, split="10fold", image_set="funneled"), f"{src.root}/lfw-py",
                      "they must be the original releases (torchvision checks the md5 of lfw-funneled.tgz, "
                      "people.txt and lfw-names.txt)")
    return Catalog(size=len(ds), decode=lambda i: _decode_item(ds, i), crop=LFW_CROP, where=f"{src.root}/lfw-py",
                   name=lambda i: os.path.basename(ds.data[i]),
                   group=lambda i: os.path.basename(os.path.dirname(ds.data[i])))  # lfw_funneled/<person>/


def _fingerprint_lfw(src: Source) -> list:
    base = _check_lfw(src)
    return _stat_files(base, LFW_FILES[1:])


# --- shared helpers for the torchvision sources --------------------------------------------------------------------------

def _stat_files(base: Path, names) -> list:
    return [[n, (base / n).stat().st_size, (base / n).stat().st_mtime_ns] for n in names]


def _torchvision(make: Callable, where: str, hint: str):
    """Construct a torchvision dataset, turning its generic RuntimeError into one line that says where to look."""
    try:
        return make()
    except (RuntimeError, OSError) as e:  # missing/corrupt files, or a failed download (URLError is an OSError)
        msg = f"torchvision could not open the dataset in {where}: {e}"
        raise ValueError(f"{msg}; {hint}" if hint else msg) from e


@dataclass(frozen=True)
class SourceKind:
    """One entry of SOURCES: its syntax, how to open it, and what identifies its files for the cache key."""

    syntax: str  # shown in error messages
    open: Callable[..., Catalog]  # (Source, download=False) -> Catalog
    fingerprint: Callable[[Source], list]  # cheap (no decoding); raises FileNotFoundError when files are missing
    cache: bool = True  # worth caching (decoding costs file I/O)
    downloads: bool = False  # open(download=True) fetches the files
    embedded: bool = False  # ships inside an installed package: no path, nothing to download


SOURCES: dict[str, SourceKind] = {
    "lfw-subset": SourceKind("lfw-subset", lambda s, download=False: _open_lfw_subset(s), _fingerprint_lfw_subset,
                             cache=False, embedded=True),
    "folder": SourceKind("folder:PATH", lambda s, download=False: _open_folder(s), _fingerprint_folder),
    "celeba": SourceKind("celeba:ROOT", _open_celeba, _fingerprint_celeba, downloads=True),
    "oxford-pet": SourceKind("oxford-pet:ROOT[:BREED]", _open_pet, _fingerprint_pet, downloads=True),
    "lfw": SourceKind("lfw:ROOT", _open_lfw, _fingerprint_lfw),
    "skimage-photos": SourceKind("skimage-photos", lambda s, download=False: _open_skimage_photos(s),
                                 _fingerprint_skimage_photos, cache=False, embedded=True),
}


def check_source(spec: str, *, download: bool = False) -> None:
    """Fail fast (FileNotFoundError, one line) when a source's files are missing, without decoding any image.

    A source that can download is not checked when `download` is set: the download will bring its files.
    """
    src = parse_source(spec)
    kind = SOURCES[src.kind]
    if download and kind.downloads:
        return
    kind.fingerprint(src)

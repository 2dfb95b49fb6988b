"""Images on disk: the `ImageSet` (uint8 images with provenance), the one image-folder reader, and the Parquet
image table that holds prepared sets, composed training sets and generated samples.

An image table has one row per image: ``png`` (lossless bytes), ``source``, ``da_type`` and ``index``, plus our JSON
(shape and free metadata) in the Parquet schema metadata. Reading one back gives the same uint8 tensor bit for bit.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan import storage

FORMAT_VERSION = 1  # of the table layout (the preprocessing version lives in gan.realsets)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
TABLE_KEY = b"gansweep"  # Parquet schema-metadata key holding our JSON


@dataclass(frozen=True)
class ImageSet:
    """Images plus per-image provenance. Every tuple has one entry per image."""

    images: torch.Tensor  # uint8 (N, 3, H, W)
    source: tuple[str, ...]  # "real", "aug", "donor", "fake"
    da_type: tuple[str, ...]  # "none" for a real image, else the AUGMENTATIONS key that made it
    index: tuple[int, ...]  # real image: its index in the source; aug: index of its base real image / donor sample

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @classmethod
    def of(cls, images: torch.Tensor, source: str = "fake") -> "ImageSet":
        """Images without provenance of their own (generated samples): one `source` label, indices 0..N-1."""
        n = int(images.shape[0])
        return cls(images, (source,) * n, ("none",) * n, tuple(range(n)))


# ----------------------------------------------------------------------------------------------------------------------
# Image files


def list_image_files(root: str | os.PathLike) -> list[Path]:
    """Every image file under `root` (recursive), sorted by relative path. Missing folder -> FileNotFoundError."""
    base = Path(root)
    if not base.is_dir():
        what = "is not a folder" if base.exists() else "does not exist"
        raise FileNotFoundError(f"image folder {root} {what}")
    files = [p for p in base.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(base).as_posix())


def pil_to_uint8(img) -> torch.Tensor:
    """A PIL image (any mode) -> uint8 (3,h,w). Forces the full decode, so a truncated file raises here."""
    img = img.convert("RGB")
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def decode_image(path: str | os.PathLike) -> torch.Tensor:
    """One image file -> uint8 (3,h,w); raises OSError/ValueError/SyntaxError on an unreadable file."""
    from PIL import Image

    with Image.open(path) as img:
        return pil_to_uint8(img)


def read_images(path: str | os.PathLike) -> torch.Tensor:
    """A folder of images or a .parquet image table -> uint8 (N, 3, H, W).

    A folder's images are read in sorted path order; when they differ in size, each is resized (bicubic) to the
    first one's size so the set stacks into one tensor. An unreadable file is a ValueError naming it.
    """
    import torchvision.transforms.v2.functional as TF
    from torchvision.transforms import InterpolationMode

    p = Path(path)
    if p.suffix.lower() == ".parquet" and p.is_file():
        return read_image_table(p).images
    if not p.is_dir():
        raise ValueError(f"{path} is neither a folder of images nor a .parquet image table")
    files = list_image_files(p)
    if not files:
        raise ValueError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {path}")
    images = []
    for f in files:
        try:
            img = decode_image(f)
        except (OSError, ValueError, SyntaxError) as e:
            raise ValueError(f"cannot read image {f}: {e}") from e
        if images and img.shape[-2:] != images[0].shape[-2:]:
            img = TF.resize(img, list(images[0].shape[-2:]), interpolation=InterpolationMode.BICUBIC, antialias=True)
        images.append(img)
    return torch.stack(images)


# ----------------------------------------------------------------------------------------------------------------------
# Parquet image table


def _png(img: torch.Tensor) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _unpng(data: bytes) -> torch.Tensor:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return pil_to_uint8(img)


def write_image_table(path, imageset: ImageSet, metadata: dict | None = None) -> None:
    """Write an ImageSet as Parquet (columns png, source, da_type, index), atomically (`gan.storage.atomic`).

    `metadata` (JSON-serialisable) is stored in the schema metadata; read it back with `read_image_metadata`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = imageset.images
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 (N,3,H,W), got {images.dtype} {tuple(images.shape)}")
    images = images.cpu().contiguous()
    table = pa.table({
        "png": pa.array([_png(img) for img in images], type=pa.binary()),
        "source": pa.array(list(imageset.source), type=pa.string()),
        "da_type": pa.array(list(imageset.da_type), type=pa.string()),
        "index": pa.array(list(imageset.index), type=pa.int64()),
    })
    info = dict(format=FORMAT_VERSION, shape=list(images.shape), metadata=metadata or {})
    table = table.replace_schema_metadata({TABLE_KEY: json.dumps(info).encode()})
    with storage.atomic(path) as tmp:
        pq.write_table(table, tmp)


def _table_info(schema, path) -> dict:
    raw = (schema.metadata or {}).get(TABLE_KEY)
    if raw is None:
        raise ValueError(f"{path} is not a gansweep image table (no {TABLE_KEY.decode()!r} schema metadata)")
    return json.loads(raw)


def read_image_table(path, rows: list[int] | None = None) -> ImageSet:
    """Read a table written by `write_image_table` back into an ImageSet (bit-exact); `rows` picks some images."""
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise FileNotFoundError(f"image table {path} does not exist")
    table = pq.read_table(path)
    info = _table_info(table.schema, path)
    if rows is not None:
        table = table.take(rows)
    cols = table.to_pydict()
    shape = (len(cols["png"]), *info["shape"][1:])
    images = torch.stack([_unpng(b) for b in cols["png"]]) if cols["png"] else torch.empty(shape, dtype=torch.uint8)
    if tuple(images.shape) != tuple(shape):
        raise ValueError(f"{path}: images decode to {tuple(images.shape)} but the table says {tuple(shape)}")
    return ImageSet(images=images.contiguous(), source=tuple(cols["source"]), da_type=tuple(cols["da_type"]),
                    index=tuple(int(i) for i in cols["index"]))


def read_image_metadata(path) -> dict:
    """The `metadata` dict stored by `write_image_table` (reads only the schema)."""
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise FileNotFoundError(f"image table {path} does not exist")
    return _table_info(pq.read_schema(path), path)["metadata"]


def image_png(path, row: int) -> bytes:
    """The stored PNG bytes of one image of a table (no decode): what a web page can serve as it is."""
    import pyarrow.parquet as pq

    column = pq.read_table(path, columns=["png"]).column("png")
    if not 0 <= row < len(column):
        raise IndexError(f"{path} has {len(column)} images, no row {row}")
    return column[row].as_py()


# ----------------------------------------------------------------------------------------------------------------------
# Preview


def preview_grid(imageset: ImageSet, per_type: int = 8, min_cell: int = 64):
    """A labelled PIL grid: one row per da_type (in order of first appearance), its first `per_type` images, the
    label (`da_type`, count) written above the row. Images smaller than `min_cell` are upscaled (nearest)."""
    from PIL import Image, ImageDraw

    types = list(dict.fromkeys(imageset.da_type))
    n, _, h, w = imageset.images.shape
    scale = max(1, -(-min_cell // max(h, 1)))
    cell_h, cell_w, pad, label_h = h * scale, w * scale, 2, 14
    cols = max(1, min(per_type, max((imageset.da_type.count(t) for t in types), default=1)))
    width = pad + cols * (cell_w + pad)
    height = pad + len(types) * (label_h + cell_h + pad)
    canvas = Image.new("RGB", (width, max(height, 1)), "white")
    pen = ImageDraw.Draw(canvas)
    for row, t in enumerate(types):
        rows = [i for i, d in enumerate(imageset.da_type) if d == t]
        y = pad + row * (label_h + cell_h + pad)
        pen.text((pad, y + 1), f"{t} (n={len(rows)})", fill="black")
        for col, i in enumerate(rows[:per_type]):
            tile = Image.fromarray(imageset.images[i].permute(1, 2, 0).cpu().numpy())
            if scale > 1:
                tile = tile.resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (pad + col * (cell_w + pad), y + label_h))
    return canvas

"""gan.imagetable and gan.cache: the Parquet image table round trip, the image hash, the preview grid."""

import numpy as np
import pytest
import torch

from gan import imagetable
from gan.cache import image_hash
from gan.imagetable import ImageSet


def random_set(n=7, size=32, seed=0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return ImageSet(images, ("real",) * 3 + ("aug",) * (n - 3), ("none",) * 3 + ("hflip",) * (n - 3),
                    tuple(range(n)))


def test_image_table_round_trip_bit_exact(tmp_path):
    s = random_set()
    meta = {"dataset": "lfw-subset", "n_aug": 4, "nested": {"a": [1, 2]}}
    imagetable.write_image_table(tmp_path / "t.parquet", s, metadata=meta)
    back = imagetable.read_image_table(tmp_path / "t.parquet")
    assert torch.equal(back.images, s.images) and back.images.dtype == torch.uint8
    assert (back.source, back.da_type, back.index) == (s.source, s.da_type, s.index)
    assert imagetable.read_image_metadata(tmp_path / "t.parquet") == meta
    import pyarrow.parquet as pq

    assert pq.read_schema(tmp_path / "t.parquet").names == ["png", "source", "da_type", "index"]


def test_image_table_empty_and_errors(tmp_path):
    empty = ImageSet(torch.empty(0, 3, 64, 64, dtype=torch.uint8), (), (), ())
    imagetable.write_image_table(tmp_path / "e.parquet", empty)
    assert imagetable.read_image_table(tmp_path / "e.parquet").images.shape == (0, 3, 64, 64)
    with pytest.raises(FileNotFoundError):
        imagetable.read_image_table(tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="uint8"):
        imagetable.write_image_table(tmp_path / "f.parquet", ImageSet(torch.zeros(1, 3, 4, 4), ("real",), ("none",), (0,)))


def test_image_hash():
    a, b = random_set(seed=0), random_set(seed=0)
    assert image_hash(a.images) == image_hash(b.images) and len(image_hash(a.images)) == 16
    changed = a.images.clone()
    changed[0, 0, 0, 0] ^= 1
    assert image_hash(changed) != image_hash(a.images)


def test_preview_grid():
    s = random_set(n=7, size=32)
    grid = imagetable.preview_grid(s, per_type=3)
    # two rows (none, hflip) of 3 cells, 32 px images upscaled x2 to 64
    assert grid.size == (2 + 3 * 66, 2 + 2 * (14 + 64 + 2))
    px = np.asarray(grid)
    assert (px[:16, :60] < 128).any()  # the label is drawn above the first row

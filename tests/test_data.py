"""gan.sources and gan.realsets: source strings, every source on tiny fake folders in torchvision's layout, the seeded
draw, unreadable files and the set cache."""

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan import imagetable, realsets, sources
from gan.cache import cache_root


# ----------------------------------------------------------------------------------------------------------------------
# helpers: tiny image files and fake dataset layouts


def write_image(path: Path, w: int = 40, h: int = 30, seed: int = 0, mode: str = "RGB") -> Path:
    """A small random image (content depends on seed), in the format the suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode)
    img.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else img.save(path)
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_folder(root: Path, n: int = 6) -> list[Path]:
    """n images in nested folders with mixed-case extensions; returns them in sorted relative-path order."""
    names = ["a.jpg", "b.PNG", "sub/c.jpeg", "sub/d.webp", "sub/deeper/e.BMP", "z.png", "y.jpg", "x.png"][:n]
    files = [write_image(root / name, seed=i) for i, name in enumerate(names)]
    (root / "notes.txt").write_text("not an image")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def make_celeba(root: Path, monkeypatch, n: int = 6) -> Path:
    """ROOT/celeba/ with aligned 178x218 jpgs and the five list files; torchvision's md5 table patched to match."""
    base = root / "celeba"
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        write_image(base / "img_align_celeba" / name, w=178, h=218, seed=100 + i)
    (base / "list_eval_partition.txt").write_text("".join(f"{x} {i % 3}\n" for i, x in enumerate(names)))
    (base / "identity_CelebA.txt").write_text("".join(f"{x} {i + 1}\n" for i, x in enumerate(names)))
    (base / "list_attr_celeba.txt").write_text(
        f"{n}\nSmiling Young \n" + "".join(f"{x} 1 -1\n" for x in names))
    (base / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{x} 1 2 3 4\n" for x in names))
    (base / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x "
        "rightmouth_y\n" + "".join(f"{x} 1 2 3 4 5 6 7 8 9 10\n" for x in names))
    patch_celeba_md5(base, monkeypatch)
    return base


def patch_celeba_md5(base: Path, monkeypatch):
    """torchvision checks each list file against the real release's md5: point its table at our fakes."""
    from torchvision.datasets import CelebA

    table = [(fid, md5(base / fn) if (base / fn).exists() else h, fn) for fid, h, fn in CelebA.file_list]
    monkeypatch.setattr(CelebA, "file_list", table)


PETS = [("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("pomeranian", 3, 2)]


def make_pet(root: Path, per_breed: int = 4) -> Path:
    """ROOT/oxford-iiit-pet/images/*.jpg + annotations/{list,trainval,test}.txt; half of each breed in each split."""
    base = root / "oxford-iiit-pet"
    lines = {"trainval": [], "test": []}
    for breed, label, species in PETS:
        for k in range(1, per_breed + 1):
            image_id = f"{breed}_{k}"
            write_image(base / "images" / f"{image_id}.jpg", w=50 + k, h=40, seed=label * 10 + k)
            lines["trainval" if k % 2 else "test"].append(f"{image_id} {label} {species} {k}\n")
    (base / "annotations").mkdir(parents=True)
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("".join(rows))
    (base / "annotations" / "list.txt").write_text("#Image CLASS-ID SPECIES BREED ID\n"
                                                   + "".join(lines["trainval"] + lines["test"]))
    return base


def make_lfw(root: Path, monkeypatch) -> Path:
    """ROOT/lfw-py/ with lfw_funneled/<name>/<name>_000k.jpg, people.txt (10fold format), lfw-names.txt and the
    archive torchvision insists on; its md5 table patched to match the fakes."""
    from torchvision.datasets import LFWPeople

    base = root / "lfw-py"
    people = {"Alice_Smith": 2, "Bob_Jones": 1, "Carol_King": 3}
    for j, (name, count) in enumerate(people.items()):
        for k in range(1, count + 1):
            write_image(base / "lfw_funneled" / name / f"{name}_{k:04d}.jpg", w=250, h=250, seed=200 + 10 * j + k)
    rows = "".join(f"{name}\t{count}\n" for name, count in people.items())
    (base / "people.txt").write_text(f"1\n{len(people)}\n{rows}")  # 1 fold holding everyone
    (base / "lfw-names.txt").write_text(rows)
    (base / "lfw-funneled.tgz").write_bytes(b"stand-in for the archive")
    monkeypatch.setattr(LFWPeople, "file_dict", {**LFWPeople.file_dict, "funneled": (
        "lfw_funneled", "lfw-funneled.tgz", md5(base / "lfw-funneled.tgz"))})
    monkeypatch.setattr(LFWPeople, "checksums", {**LFWPeople.checksums, "people.txt": md5(base / "people.txt"),
                                                 "lfw-names.txt": md5(base / "lfw-names.txt")})
    return base


def expected(path: Path, size: int, crop=None) -> torch.Tensor:
    """What load_real should produce for one file."""
    return realsets.preprocess(imagetable.decode_image(path), size, crop)


# ----------------------------------------------------------------------------------------------------------------------
# source strings


def test_parse_source_forms():
    assert sources.parse_source("lfw-subset") == sources.Source("lfw-subset")
    assert sources.parse_source("folder:some/dir") == sources.Source("folder", "some/dir")
    assert sources.parse_source("celeba:/d") == sources.Source("celeba", "/d")
    assert sources.parse_source("oxford-pet:data") == sources.Source("oxford-pet", "data")
    assert sources.parse_source("oxford-pet:data:Pomeranian") == sources.Source("oxford-pet", "data", "Pomeranian")
    assert sources.parse_source("oxford-pet:data:Pomeranian").spec == "oxford-pet:data:Pomeranian"
    assert sources.parse_source("lfw:/x") == sources.Source("lfw", "/x")
    assert sources.parse_source("skimage-photos") == sources.Source("skimage-photos")
    assert set(sources.SOURCES) == {"lfw-subset", "skimage-photos", "folder", "celeba", "oxford-pet", "lfw"}


@pytest.mark.parametrize("spec", ["xyz", "imagenet:/data", "Folder:x"])
def test_parse_source_unknown_lists_allowed(spec):
    with pytest.raises(ValueError) as e:
        sources.parse_source(spec)
    assert str(e.value) == (f"unknown dataset source {spec!r}; allowed: lfw-subset, folder:PATH, celeba:ROOT, "
                            "oxford-pet:ROOT[:BREED], lfw:ROOT, skimage-photos")


@pytest.mark.parametrize("spec", ["", "folder", "folder:", "celeba:", "lfw-subset:x", "skimage-photos:x",
                                  "oxford-pet:data:"])
def test_parse_source_bad_syntax(spec):
    with pytest.raises(ValueError):
        sources.parse_source(spec)


def test_resolve_source_makes_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sources.resolve_source("folder:imgs") == f"folder:{tmp_path / 'imgs'}"
    assert sources.resolve_source("oxford-pet:d:Pomeranian") == f"oxford-pet:{tmp_path / 'd'}:Pomeranian"
    assert sources.resolve_source("lfw-subset") == "lfw-subset"


# ----------------------------------------------------------------------------------------------------------------------
# lfw-subset, shapes, determinism


@pytest.mark.parametrize("size", [32, 64, 128])
def test_lfw_subset_shapes(size):
    s = realsets.load_real("lfw-subset", 12, size, seed=0, cache_dir=False)
    assert s.images.shape == (12, 3, size, size) and s.images.dtype == torch.uint8
    assert s.source == ("real",) * 12 and s.da_type == ("none",) * 12
    assert all(0 <= i < 100 for i in s.index) and len(set(s.index)) == 12
    assert torch.equal(s.images[:, 0], s.images[:, 1])  # grey -> 3 equal channels


def test_lfw_subset_all_100_faces_and_determinism():
    a = realsets.load_real("lfw-subset", 100, 32, seed=1, cache_dir=False)
    assert sorted(a.index) == list(range(100))
    b = realsets.load_real("lfw-subset", 100, 32, seed=1, cache_dir=False)
    assert torch.equal(a.images, b.images) and a.index == b.index
    c = realsets.load_real("lfw-subset", 100, 32, seed=2, cache_dir=False)
    assert a.index != c.index
    with pytest.raises(ValueError, match=r"n_real=101 .* only 100 readable"):
        realsets.load_real("lfw-subset", 101, 32, seed=0, cache_dir=False)


def test_smaller_set_is_prefix_of_larger():
    small = realsets.load_real("lfw-subset", 5, 32, seed=3, cache_dir=False)
    large = realsets.load_real("lfw-subset", 20, 32, seed=3, cache_dir=False)
    assert small.index == large.index[:5] and torch.equal(small.images, large.images[:5])


@pytest.mark.parametrize("kwargs, match", [(dict(image_size=0), "image_size must be a positive integer"),
                                           (dict(n_real=0), "positive integer")])
def test_load_real_rejects_bad_args(kwargs, match):
    args = dict(spec="lfw-subset", n_real=4, image_size=32, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        realsets.load_real(**args, cache_dir=False)


def test_preprocess_crops_centre_square_then_resizes():
    img = torch.zeros(3, 218, 178, dtype=torch.uint8)
    img[:, 20:198] = 200  # the centre 178x178 square
    out = realsets.preprocess(img, 32, crop=sources.CELEBA_CROP)
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8 and (out == 200).all()
    assert realsets.preprocess(torch.zeros(3, 40, 30, dtype=torch.uint8), 64, crop=150).shape == (3, 64, 64)


# ----------------------------------------------------------------------------------------------------------------------
# folder:PATH


def test_folder_recursive_sorted_case_insensitive(tmp_path):
    files = make_folder(tmp_path / "imgs")
    s = realsets.load_real(f"folder:{tmp_path / 'imgs'}", len(files), 32, seed=0, cache_dir=False)
    assert sorted(s.index) == list(range(len(files)))
    for img, i in zip(s.images, s.index):
        assert torch.equal(img, expected(files[i], 32))


def test_folder_skips_unreadable_with_one_warning(tmp_path):
    make_folder(tmp_path / "imgs", n=4)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"not a jpeg at all")
    good = write_image(tmp_path / "imgs" / "trunc.jpg", w=64, h=64, seed=9)
    good.write_bytes(good.read_bytes()[:300])  # truncated mid-scan
    spec = f"folder:{tmp_path / 'imgs'}"
    with pytest.warns(realsets.SkippedImages, match=r"skipped 2 unreadable image file\(s\): ") as rec:
        s = realsets.load_real(spec, 4, 32, seed=0, cache_dir=False)
    (warning,) = [w for w in rec if "skipped" in str(w.message)]
    assert {"broken.jpg (UnidentifiedImageError)", "trunc.jpg (OSError)"} <= set(
        str(warning.message).split(": ", 1)[1].split(f" in {tmp_path / 'imgs'}")[0].split(", "))
    assert len(s) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed load says everything in its error: no warning besides
        with pytest.raises(ValueError) as e:
            realsets.load_real(spec, 5, 32, seed=0, cache_dir=False)
    assert "n_real=5" in str(e.value) and "only 4 readable (of 6)" in str(e.value)
    assert "; skipped 2 unreadable image file(s): " in str(e.value) and "broken.jpg (UnidentifiedImageError)" in str(
        e.value) and len(str(e.value).splitlines()) == 1


def test_folder_missing_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder .*nope does not exist"):
        realsets.load_real(f"folder:{tmp_path / 'nope'}", 1, 32, seed=0, cache_dir=tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        realsets.load_real(f"folder:{tmp_path / 'empty'}", 1, 32, seed=0, cache_dir=False)


def test_folder_relative_path(tmp_path, monkeypatch):
    make_folder(tmp_path / "imgs", n=3)
    monkeypatch.chdir(tmp_path)
    assert len(realsets.load_real("folder:imgs", 3, 32, seed=0, cache_dir=False)) == 3


# ----------------------------------------------------------------------------------------------------------------------
# caching


def counting_decoder(monkeypatch):
    calls = []
    real = sources.decode_image

    def decode(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(sources, "decode_image", decode)
    return calls


def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    files = make_folder(tmp_path / "imgs", n=4)
    calls = counting_decoder(monkeypatch)
    spec, cache = f"folder:{tmp_path / 'imgs'}", tmp_path / "cache"
    first = realsets.load_real(spec, 3, 32, seed=0, cache_dir=cache)
    assert len(calls) == 3 and len(list((cache / "sets").glob("*.parquet"))) == 1
    assert not list((cache / "sets").glob("*.tmp"))  # the atomic write left nothing behind

    second = realsets.load_real(spec, 3, 32, seed=0, cache_dir=cache)
    assert len(calls) == 3  # served from the cache: nothing decoded
    assert torch.equal(first.images, second.images)
    assert (first.source, first.da_type, first.index) == (second.source, second.da_type, second.index)

    realsets.load_real(spec, 3, 64, seed=0, cache_dir=cache)  # another size is another entry
    assert len(calls) == 6
    write_image(files[0], seed=99)  # rewrite a file -> size/mtime change -> miss
    os.utime(files[0], ns=(1, 1))
    third = realsets.load_real(spec, 3, 32, seed=0, cache_dir=cache)
    assert len(calls) == 9 and len(list((cache / "sets").glob("*.parquet"))) == 3
    write_image(tmp_path / "imgs" / "new.png", seed=5)  # a new file -> miss
    realsets.load_real(spec, 3, 32, seed=0, cache_dir=cache)
    assert len(calls) == 12
    assert third.images.shape == (3, 3, 32, 32)


def test_cache_dir_default_from_env(tmp_path, monkeypatch):
    make_folder(tmp_path / "imgs", n=2)
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "envcache"))
    assert cache_root() == tmp_path / "envcache"
    realsets.load_real(f"folder:{tmp_path / 'imgs'}", 2, 32, seed=0)
    assert len(list((tmp_path / "envcache" / "sets").glob("*.parquet"))) == 1


# ----------------------------------------------------------------------------------------------------------------------
# torchvision sources on fake layouts


def test_celeba(tmp_path, monkeypatch):
    base = make_celeba(tmp_path / "root", monkeypatch)
    s = realsets.load_real(f"celeba:{tmp_path / 'root'}", 4, 64, seed=0, cache_dir=False)
    assert s.images.shape == (4, 3, 64, 64)
    files = sorted((base / "img_align_celeba").glob("*.jpg"))
    for img, i in zip(s.images, s.index):
        assert torch.equal(img, expected(files[i], 64, crop=178))


def test_celeba_missing_files_message(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as e:
        realsets.load_real(f"celeba:{tmp_path}", 2, 32, seed=0, cache_dir=False)
    msg = str(e.value)
    assert "\n" not in msg and f"{tmp_path}/celeba/" in msg and "img_align_celeba" in msg
    assert "list_eval_partition.txt" in msg
    base = make_celeba(tmp_path, monkeypatch)
    (base / "identity_CelebA.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing: identity_CelebA.txt"):
        realsets.load_real(f"celeba:{tmp_path}", 2, 32, seed=0, cache_dir=False)


def test_celeba_md5_mismatch_is_one_line(tmp_path, monkeypatch):
    base = make_celeba(tmp_path, monkeypatch)
    (base / "list_attr_celeba.txt").write_text("3\nSmiling\n")  # no longer matches the (patched) md5
    with pytest.raises(ValueError, match="torchvision could not open the dataset") as e:
        realsets.load_real(f"celeba:{tmp_path}", 2, 32, seed=0, cache_dir=False)
    assert "\n" not in str(e.value) and "md5" in str(e.value)


def test_oxford_pet_breed_filter(tmp_path):
    make_pet(tmp_path)
    everything = realsets.load_real(f"oxford-pet:{tmp_path}", 12, 32, seed=0, cache_dir=False)
    assert sorted(everything.index) == list(range(12))
    for breed in ["Pomeranian", "pomeranian", "American_Bulldog", "american bulldog"]:
        s = realsets.load_real(f"oxford-pet:{tmp_path}:{breed}", 4, 32, seed=0, cache_dir=False)
        assert s.images.shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match=r"only 4 readable"):
        realsets.load_real(f"oxford-pet:{tmp_path}:Pomeranian", 5, 32, seed=0, cache_dir=False)
    with pytest.raises(ValueError) as e:
        realsets.load_real(f"oxford-pet:{tmp_path}:Beagle", 1, 32, seed=0, cache_dir=False)
    assert str(e.value) == ("unknown Oxford-IIIT Pet breed 'Beagle'; available: Abyssinian, American Bulldog, "
                            "Pomeranian")


def test_oxford_pet_breed_images_are_that_breed(tmp_path):
    base = make_pet(tmp_path)
    s = realsets.load_real(f"oxford-pet:{tmp_path}:pomeranian", 4, 32, seed=1, cache_dir=False)
    want = [expected(base / "images" / f"pomeranian_{k}.jpg", 32) for k in range(1, 5)]
    for img in s.images:
        assert any(torch.equal(img, w) for w in want)


def test_oxford_pet_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"oxford-iiit-pet/images.*missing: images"):
        realsets.load_real(f"oxford-pet:{tmp_path}", 1, 32, seed=0, cache_dir=False)


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    """download=True with missing files calls torchvision's own download (stubbed here: no network in tests)."""
    from torchvision.datasets import OxfordIIITPet

    calls = []
    monkeypatch.setattr(OxfordIIITPet, "_download", lambda self: calls.append(1) or (
        self._check_exists() or make_pet(Path(self.root))))
    s = realsets.load_real(f"oxford-pet:{tmp_path}:Pomeranian", 2, 32, seed=0, cache_dir=False, download=True)
    assert len(s) == 2 and calls
    calls.clear()
    realsets.load_real(f"oxford-pet:{tmp_path}", 2, 32, seed=0, cache_dir=tmp_path / "c", download=True)
    assert not calls  # files present: no download attempted

    def offline(self):
        raise OSError("network is unreachable")

    monkeypatch.setattr(OxfordIIITPet, "_download", offline)
    with pytest.raises(ValueError, match="torchvision could not open the dataset .*network is unreachable"):
        realsets.load_real(f"oxford-pet:{tmp_path / 'other'}", 1, 32, seed=0, cache_dir=False, download=True)


def test_lfw(tmp_path, monkeypatch):
    base = make_lfw(tmp_path, monkeypatch)
    s = realsets.load_real(f"lfw:{tmp_path}", 6, 128, seed=0, cache_dir=False)
    assert s.images.shape == (6, 3, 128, 128)
    files = [base / "lfw_funneled" / n / f"{n}_{k:04d}.jpg"
             for n, c in [("Alice_Smith", 2), ("Bob_Jones", 1), ("Carol_King", 3)] for k in range(1, c + 1)]
    for img, i in zip(s.images, s.index):
        assert torch.equal(img, expected(files[i], 128, crop=150))


def test_lfw_missing(tmp_path):
    (tmp_path / "lfw-py").mkdir()
    with pytest.raises(FileNotFoundError) as e:
        realsets.load_real(f"lfw:{tmp_path}", 1, 32, seed=0, cache_dir=False, download=True)
    assert "lfw-funneled.tgz" in str(e.value) and "can no longer download" in str(e.value)


def test_torchvision_source_cache_hit(tmp_path, monkeypatch):
    make_pet(tmp_path)
    spec, cache = f"oxford-pet:{tmp_path}", tmp_path / "cache"
    a = realsets.load_real(spec, 3, 32, seed=0, cache_dir=cache)
    monkeypatch.setattr(sources, "_decode_item", lambda *a: pytest.fail("decoded despite the cache"))
    b = realsets.load_real(spec, 3, 32, seed=0, cache_dir=cache)
    assert torch.equal(a.images, b.images) and a.index == b.index

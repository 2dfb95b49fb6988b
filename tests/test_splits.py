"""Identity-disjoint splits (gan.realsets, `split`): on fake CelebA and LFW layouts with repeated people, and a
folder split by sub-folder, no person (or sub-folder) is on both sides, the counts are exact, the training set is the
same under every split, and a by-image split of the same data does put people on both sides (so the checks can
fail)."""

from pathlib import Path

import pytest
import torch

from gan import realsets
from tests.test_data import md5, patch_celeba_md5, write_image

PEOPLE, PER_PERSON = 20, 2  # 40 images; 6 training ones cover at most 6 people, leaving >= 28 images to hold out


def fake_celeba(root: Path, monkeypatch) -> dict[int, str]:
    """ROOT/celeba/ with 40 aligned jpgs of 20 people (2 each, interleaved) and its list files; index -> person."""
    base = root / "celeba"
    names = [f"{i + 1:06d}.jpg" for i in range(PEOPLE * PER_PERSON)]
    person = {i: str(1000 + i % PEOPLE) for i in range(len(names))}
    for i, name in enumerate(names):
        write_image(base / "img_align_celeba" / name, w=178, h=218, seed=i)
    rows = lambda fmt: "".join(fmt(i, x) for i, x in enumerate(names))  # noqa: E731
    (base / "list_eval_partition.txt").write_text(rows(lambda i, x: f"{x} 0\n"))
    (base / "identity_CelebA.txt").write_text(rows(lambda i, x: f"{x} {person[i]}\n"))
    (base / "list_attr_celeba.txt").write_text(f"{len(names)}\nSmiling\n" + rows(lambda i, x: f"{x} 1\n"))
    (base / "list_bbox_celeba.txt").write_text(f"{len(names)}\nimage_id x_1 y_1 width height\n"
                                               + rows(lambda i, x: f"{x} 1 2 3 4\n"))
    (base / "list_landmarks_align_celeba.txt").write_text(
        f"{len(names)}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
        "rightmouth_x rightmouth_y\n" + rows(lambda i, x: f"{x} 1 2 3 4 5 6 7 8 9 10\n"))
    patch_celeba_md5(base, monkeypatch)
    return person


def fake_lfw(root: Path, monkeypatch) -> dict[int, str]:
    """ROOT/lfw-py/ in LFWPeople's layout: one person with 10 images (LFW is skewed), 15 with 2; index -> person
    (torchvision's order: people as listed, their images in file order)."""
    from torchvision.datasets import LFWPeople

    base = root / "lfw-py"
    people = {"Big_Name": 10, **{f"Person_{k:02d}": 2 for k in range(15)}}
    person, i = {}, 0
    for j, (name, count) in enumerate(people.items()):
        for k in range(1, count + 1):
            write_image(base / "lfw_funneled" / name / f"{name}_{k:04d}.jpg", w=250, h=250, seed=300 + 20 * j + k)
            person[i], i = name, i + 1
    rows = "".join(f"{name}\t{count}\n" for name, count in people.items())
    (base / "people.txt").write_text(f"1\n{len(people)}\n{rows}")
    (base / "lfw-names.txt").write_text(rows)
    (base / "lfw-funneled.tgz").write_bytes(b"stand-in for the archive")
    monkeypatch.setattr(LFWPeople, "file_dict", {**LFWPeople.file_dict, "funneled": (
        "lfw_funneled", "lfw-funneled.tgz", md5(base / "lfw-funneled.tgz"))})
    monkeypatch.setattr(LFWPeople, "checksums", {**LFWPeople.checksums, "people.txt": md5(base / "people.txt"),
                                                 "lfw-names.txt": md5(base / "lfw-names.txt")})
    return person


def shared(train, held, person) -> set[str]:
    return {person[i] for i in train.index} & {person[i] for i in held.index}


@pytest.mark.parametrize("make, kind, n_real, n_heldout", [(fake_celeba, "celeba", 6, 10), (fake_lfw, "lfw", 8, 6)])
def test_identity_split_puts_no_person_on_both_sides(tmp_path, monkeypatch, make, kind, n_real, n_heldout):
    person = make(tmp_path, monkeypatch)
    spec = f"{kind}:{tmp_path}"
    assert realsets.resolve_split(spec) == "identity"  # the default for a source that knows people
    by_image = 0
    for seed in range(4):
        train, held = realsets.load_split(spec, n_real, n_heldout, 32, seed, cache_dir=tmp_path / "cache")
        assert (len(train), len(held)) == (n_real, n_heldout)
        assert not shared(train, held, person)
        assert not set(train.index) & set(held.index)
        image_train, image_held = realsets.load_split(spec, n_real, n_heldout, 32, seed, split="image",
                                                      cache_dir=tmp_path / "cache")
        assert image_train.index == train.index and torch.equal(image_train.images, train.images)
        by_image += bool(shared(image_train, image_held, person))
        again = realsets.load_split(spec, n_real, n_heldout, 32, seed, cache_dir=tmp_path / "cache")[1]
        assert again.index == held.index  # the cache keys on the split: a cached by-image set is not reused
    assert by_image >= 3  # by image, people do land on both sides


def test_a_folder_splits_by_subfolder_only_when_asked(tmp_path):
    for album in range(6):
        for k in range(3):
            write_image(tmp_path / "imgs" / f"album{album}" / f"{k}.png", seed=10 * album + k)
    spec = f"folder:{tmp_path / 'imgs'}"
    assert realsets.resolve_split(spec) == "image"
    files = sorted(p.relative_to(tmp_path / "imgs").as_posix() for p in (tmp_path / "imgs").rglob("*.png"))
    album = {i: f.split("/")[0] for i, f in enumerate(files)}
    for seed in range(3):
        train, held = realsets.load_split(spec, 4, 5, 32, seed, split="subfolder", cache_dir=False)
        assert (len(train), len(held)) == (4, 5) and not shared(train, held, album)


@pytest.mark.parametrize("spec, split, match", [
    ("lfw-subset", "identity", "split 'identity' needs a source that knows it (celeba, lfw); lfw-subset allows: "
                               "auto, image"),
    ("celeba:/x", "subfolder", "split 'subfolder' needs a source that knows it (folder); celeba allows: auto, "
                               "identity, image"),
    ("folder:/x", "person", "split 'person' is unknown; allowed: auto, identity, subfolder, image"),
])
def test_a_split_the_source_cannot_make_is_one_line(spec, split, match):
    with pytest.raises(ValueError) as e:
        realsets.resolve_split(spec, split)
    assert str(e.value) == match

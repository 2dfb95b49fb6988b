"""`gansweep score` on a folder and on a Parquet image table: --json keys, the human table, one-line errors."""

import json
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from gan import metrics
from gan.imagetable import ImageSet, write_image_table
from sweep.cli import score as cmd_score
from sweep.cli import main


def photos(n, size=48, seed=0):
    """n random crops of skimage's colour photos, uint8 (n, 3, size, size)."""
    import skimage.data as d

    src = [torch.from_numpy(np.ascontiguousarray(f())).permute(2, 0, 1) for f in (d.astronaut, d.chelsea, d.coffee)]
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = src[i % len(src)]
        y, x = (int(torch.randint(0, s - size + 1, (1,), generator=g)) for s in p.shape[1:])
        out.append(p[:, y:y + size, x:x + size])
    return torch.stack(out).contiguous()


def save_folder(path, images):
    (path / "sub").mkdir(parents=True)
    for i, img in enumerate(images):  # half in a subfolder: reading is recursive
        where = path / "sub" if i % 2 else path
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(where / f"{i:03d}.png")
    return path


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(map(str, args)))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def images():
    return photos(10)


@pytest.fixture
def folder(tmp_path, images):
    return save_folder(tmp_path / "imgs", images)


@pytest.fixture
def table(tmp_path, images):
    n = len(images)
    path = tmp_path / "fake.parquet"
    write_image_table(path, ImageSet(images, ("real",) * n, ("none",) * n, tuple(range(n))))
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path / "cache"))


def test_extractor_choices_match_the_registry():
    assert set(cmd_score.EXTRACTOR_NAMES) == set(metrics.EXTRACTORS)


def test_score_folder_json(capsys, folder):
    code, out, _ = run(capsys, "score", folder, "--json", "--splits", 3)
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"extractor", "n", "is_mean", "is_std"}
    assert result["extractor"] == "effnet" and result["n"] == 10 and result["is_mean"] >= 1


def test_score_table_against_the_same_images_as_folder(capsys, folder, table):
    code, out, _ = run(capsys, "score", table, "--reference", folder, "--json", "--splits", 2)
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"extractor", "n", "is_mean", "is_std", "fid", "kid_mean", "kid_std", "precision",
                           "recall"}
    assert abs(result["fid"]) < 1e-2  # PNG is lossless and the folder is read in file-name order: same set
    assert result["precision"] == 1.0 and result["recall"] == 1.0
    code, out, _ = run(capsys, "score", table, "--reference", folder)  # human table, reference stats cached
    assert code == 0 and "FID" in out and "IS" in out and "effnet" in out


def test_folder_with_mixed_sizes(capsys, tmp_path, images):
    folder = save_folder(tmp_path / "mixed", images[:4])
    Image.fromarray(photos(1, size=30)[0].permute(1, 2, 0).numpy()).save(folder / "small.jpg")
    code, out, _ = run(capsys, "score", folder, "--json")
    assert code == 0 and json.loads(out)["n"] == 5


@pytest.mark.parametrize("args,expected", [
    (["score", "/no/such/folder"], "does not exist"),
    (["score", "{folder}", "--extractor", "vgg"], "'vgg' is not one of 'effnet', 'inception'"),
    (["score", "{empty}"], "no images"),
    (["score", "{text}"], "neither a folder of images nor a .parquet image table"),
    (["score", "{folder}", "--splits", "0"], "--splits must be a positive integer"),
])
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, folder, args, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    paths = dict(folder=folder, empty=tmp_path / "empty", text=tmp_path / "notes.txt")
    code, out, err = run(capsys, *[a.format(**paths) for a in args])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and expected in err, err


def test_inception_offline_is_one_line_exit_2(capsys, folder, tmp_path, monkeypatch):
    monkeypatch.delenv("GANSWEEP_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    code, _, err = run(capsys, "score", folder, "--extractor", "inception")
    assert code == 2 and err.count("\n") == 1
    assert "--inception-weights" in err and "weights-inception-2015-12-05-6726825d.pth" in err

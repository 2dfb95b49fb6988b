"""`gansweep data compose / preview`: happy paths and one-line input errors (exit 2) before any data is read."""

import numpy as np
import pytest
import torch
from PIL import Image

from gan import imagetable, realsets, sources
from gan.cache import image_hash
from sweep.cli import main


def run(argv, capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def compose_args(tmp_path, *extra):
    return ["data", "compose", "--dataset", "lfw-subset", "--n-real", "20", "--image-size", "32",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "set.parquet"), *extra]


def test_compose_and_preview(tmp_path, capsys):
    code, out, err = run(compose_args(tmp_path, "--da", "hflip+contrast", "--n-aug", "10", "--seed", "3"), capsys)
    assert code == 0, err
    assert "wrote 30 images (32x32)" in out and "none 20, hflip 5, contrast 5" in out
    s = imagetable.read_image_table(tmp_path / "set.parquet")
    assert s.images.shape == (30, 3, 32, 32) and s.da_type.count("hflip") == 5
    meta = imagetable.read_image_metadata(tmp_path / "set.parquet")
    assert meta["da"] == "hflip+contrast" and meta["n_aug"] == 10 and meta["seed"] == 3
    assert meta["real_hash"] == image_hash(realsets.load_real("lfw-subset", 20, 32, 3, cache_dir=False).images)

    code, out, err = run(["data", "preview", str(tmp_path / "set.parquet"), "--out", str(tmp_path / "g.png"),
                          "--per-type", "4"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "g.png") as grid:
        assert grid.size == (2 + 4 * 66, 2 + 3 * 80)  # three rows: none, hflip, contrast


def test_compose_no_da_and_generated(tmp_path, capsys):
    code, _, err = run(compose_args(tmp_path), capsys)
    assert code == 0, err
    assert set(imagetable.read_image_table(tmp_path / "set.parquet").da_type) == {"none"}

    donor = imagetable.ImageSet(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), ("aug",) * 8,
                          ("generated",) * 8, tuple(range(8)))
    imagetable.write_image_table(tmp_path / "donor.parquet", donor)
    code, out, err = run(compose_args(tmp_path, "--da", "generated", "--n-aug", "6",
                                      "--generated", str(tmp_path / "donor.parquet")), capsys)
    assert code == 0, err
    s = imagetable.read_image_table(tmp_path / "set.parquet")
    assert s.da_type.count("generated") == 6
    gen = s.images[[i for i, d in enumerate(s.da_type) if d == "generated"]]
    assert all(any(torch.equal(g, d) for d in donor.images) for g in gen)


def test_compose_folder_source(tmp_path, capsys):
    for i in range(5):
        (tmp_path / "imgs").mkdir(exist_ok=True)
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    code, out, err = run(["data", "compose", "--dataset", f"folder:{tmp_path / 'imgs'}", "--n-real", "5",
                          "--da", "vflip", "--n-aug", "5", "--image-size", "64", "--cache-dir", str(tmp_path / "c"),
                          "--out", str(tmp_path / "f.parquet")], capsys)
    assert code == 0, err
    assert imagetable.read_image_table(tmp_path / "f.parquet").images.shape == (10, 3, 64, 64)


@pytest.mark.parametrize("extra, needle", [
    (["--da", "rotate", "--n-aug", "5"], "unknown DA type 'rotate'; allowed: none, contrast, negpos, hflip"),
    (["--dataset", "imagenet:/x"], "unknown dataset source 'imagenet:/x'; allowed: lfw-subset, folder:PATH"),
    (["--da", "hflip+vflip", "--n-aug", "5", "--pair-ratio", "1.5"], "0.0<=x<=1.0"),
    (["--n-aug", "-1"], "x>=0"),
    (["--n-real", "0"], "x>=1"),
    (["--image-size", "48"], "'32', '64', '128'"),
    (["--da", "hflip", "--n-aug", "0"], "needs n_aug > 0"),
    (["--da", "hflip", "--n-aug", "50"], "at most n_real=20"),
    (["--da", "generated", "--n-aug", "5"], "pass --generated FILE.parquet"),
    (["--dataset", "folder:/no/such/dir"], "image folder /no/such/dir does not exist"),
])
def test_compose_input_errors_are_one_line(tmp_path, capsys, monkeypatch, extra, needle):
    # nothing may be decoded for a bad request (the folder case fails on its listing, before any decode)
    monkeypatch.setattr(sources, "_open_lfw_subset", lambda *a: pytest.fail("data was read"))
    code, out, err = run(compose_args(tmp_path, *extra), capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gansweep: error: "), err
    assert needle in lines[0]
    assert not (tmp_path / "set.parquet").exists()


def test_compose_generated_size_mismatch(tmp_path, capsys):
    donor = imagetable.ImageSet(torch.zeros(8, 3, 64, 64, dtype=torch.uint8), ("aug",) * 8, ("generated",) * 8,
                          tuple(range(8)))
    imagetable.write_image_table(tmp_path / "donor.parquet", donor)
    code, _, err = run(compose_args(tmp_path, "--da", "generated", "--n-aug", "5",
                                    "--generated", str(tmp_path / "donor.parquet")), capsys)
    assert code == 2 and "--generated images are 64x64 but --image-size is 32" in err


def test_preview_missing_table(tmp_path, capsys):
    code, _, err = run(["data", "preview", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "g.png")], capsys)
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


def test_help_is_wired(capsys):
    code, out, _ = run(["data", "compose", "--help"], capsys)
    assert code == 0 and "--pair-ratio" in out and "--generated" in out

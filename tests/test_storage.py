"""gan.storage, the one place files are written and read: a local path and a "remote" one (a file:// URI, which goes
through pyarrow.fs like s3:// does) behave the same; the atomic write leaves no half file and no temporary name, and
two processes writing one file never share a temporary name."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pyarrow.fs
import pytest

from gan import storage
from sweep.records import SweepFolder


@pytest.fixture(params=["local", "uri"])
def root(request, tmp_path):
    """The same folder as a plain path, or as a URI read through pyarrow's LocalFileSystem."""
    return str(tmp_path) if request.param == "local" else f"file://{tmp_path}"


def test_write_read_list_and_exists(root, tmp_path):
    path = storage.join(root, "a", "b.json")
    assert not storage.exists(path)
    storage.write_text(path, "one")
    storage.write_text(path, "two")  # replaces
    assert storage.exists(path) and storage.read_text(path) == "two"
    assert (tmp_path / "a" / "b.json").read_text() == "two"  # the same file either way
    storage.write_bytes(storage.join(root, "a", "c.bin"), b"\x00\x01")
    assert storage.listdir(storage.join(root, "a")) == ([], ["b.json", "c.bin"])
    assert storage.listdir(root) == (["a"], [])
    assert storage.listdir(storage.join(root, "missing")) == ([], [])
    assert sorted(os.listdir(tmp_path / "a")) == ["b.json", "c.bin"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_nothing_else(root, tmp_path):
    path = storage.join(root, "f.txt")
    storage.write_text(path, "old")
    with pytest.raises(RuntimeError):
        with storage.atomic(path) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("the writer crashed")
    assert storage.read_text(path) == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_temporary_names_are_unique_per_call_and_hidden():
    a, b = storage.temporary_name("x.pt"), storage.temporary_name("x.pt")
    assert a != b and a.startswith(".x.pt.") and a.endswith(".tmp") and f".{os.getpid()}." in a


def _write_many(path: str, text: str) -> None:
    for _ in range(40):
        storage.write_text(path, text)


def test_two_processes_writing_one_file(tmp_path):
    """Each process's writes use their own temporary names, so the file is always one writer's whole text."""
    path = str(tmp_path / "shared.txt")
    texts = ["a" * 50_000, "b" * 50_000]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, t)) for t in texts]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    assert Path(path).read_text() in texts and os.listdir(tmp_path) == ["shared.txt"]


def test_fetch_and_folder_copies(tmp_path):
    src = tmp_path / "src"
    storage.write_text(str(src / "d" / "x.txt"), "x")
    uri = f"file://{tmp_path}/remote"
    storage.upload_dir(src, uri)
    assert storage.read_text(f"{uri}/d/x.txt") == "x"
    storage.write_text(f"{uri}/stale.txt", "old")
    storage.upload_dir(src, uri, replace=True)  # what the storage folder held goes first
    assert storage.listdir(uri) == (["d"], [])
    assert storage.download_dir(uri, tmp_path / "back") and (tmp_path / "back" / "d" / "x.txt").read_text() == "x"
    assert not storage.download_dir(f"{uri}/missing", tmp_path / "none")
    # a file:// URI is pyarrow's LocalFileSystem: its file is used in place, as a plain path's is
    assert storage.fetch(f"{uri}/d/x.txt", tmp_path / "cache") == f"{tmp_path}/remote/d/x.txt"
    assert storage.fetch(str(src / "d" / "x.txt"), tmp_path / "unused") == str(src / "d" / "x.txt")  # in place
    with pytest.raises(FileNotFoundError):
        storage.fetch(f"{uri}/d/nothing.txt", tmp_path / "cache")


def test_fetch_files_from_a_subtree_filesystem(tmp_path):
    """A Tune checkpoint hands over (filesystem, path): a non-local pyarrow filesystem's files are copied."""
    storage.write_text(str(tmp_path / "bucket" / "ckpt" / "grid.png"), "png")
    remote = pyarrow.fs.SubTreeFileSystem(str(tmp_path / "bucket"), pyarrow.fs.LocalFileSystem())
    found = storage.fetch_files(remote, "ckpt", ["grid.png", "absent.pt"], tmp_path / "work")
    assert list(found) == ["grid.png"] and found["grid.png"] == str(tmp_path / "work" / "grid.png")
    assert Path(found["grid.png"]).read_text() == "png"
    local = storage.fetch_files(pyarrow.fs.LocalFileSystem(), str(tmp_path / "bucket" / "ckpt"), ["grid.png"], "x")
    assert local == {"grid.png": str(tmp_path / "bucket" / "ckpt" / "grid.png")}  # used in place


def test_sweep_folder_reads_both_kinds(root, tmp_path):
    storage.write_text(storage.join(root, "t1", "params.json"), "{}")
    folder = SweepFolder(root)
    assert folder.listdir() == (["t1"], [])
    assert folder.read_text(folder.join("t1", "params.json")) == "{}"
    assert folder.local(folder.join("t1", "params.json")) == str(tmp_path / "t1" / "params.json")

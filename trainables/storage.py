"""Files in the sweep's storage, which is a local path or a URI that pyarrow understands (s3://, gs://, ...).

Only the small things gansweep keeps beside Tune's own results go through here: the sweep record and the donor
cache. Local paths are plain files; URIs go through `pyarrow.fs`.
"""

from __future__ import annotations

import os
from pathlib import Path


def is_uri(path: str) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    if is_uri(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return str(Path(base, *parts))


def absolute(path: str) -> str:
    """Local paths become absolute (Tune chdirs into trial dirs); URIs pass through."""
    return str(path) if is_uri(path) else os.path.abspath(os.path.expanduser(str(path)))


def _fs(uri: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def exists(path: str) -> bool:
    if not is_uri(path):
        return os.path.exists(path)
    import pyarrow.fs

    fs, p = _fs(path)
    return fs.get_file_info(p).type != pyarrow.fs.FileType.NotFound


def write_text(path: str, text: str) -> None:
    """Write a small text file atomically (local) or in one put (URI)."""
    if not is_uri(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        Path(tmp).write_text(text)
        os.replace(tmp, path)
        return
    fs, p = _fs(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)  # a no-op on object stores
    with fs.open_output_stream(p) as f:
        f.write(text.encode())


def read_text(path: str) -> str:
    if not is_uri(path):
        return Path(path).read_text()
    fs, p = _fs(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def download_dir(uri: str, local: str) -> bool:
    """Copy a storage folder to a local one; False when it doesn't exist. Local paths are used in place."""
    if not exists(uri):
        return False
    if is_uri(uri):
        import pyarrow.fs

        fs, p = _fs(uri)
        Path(local).mkdir(parents=True, exist_ok=True)
        pyarrow.fs.copy_files(p, local, source_filesystem=fs, destination_filesystem=pyarrow.fs.LocalFileSystem())
    return True


def upload_dir(local: str, uri: str) -> None:
    if not is_uri(uri):
        return
    import pyarrow.fs

    fs, p = _fs(uri)
    fs.create_dir(p, recursive=True)
    pyarrow.fs.copy_files(local, p, source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs)

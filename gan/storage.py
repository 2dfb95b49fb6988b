"""Where gansweep's files are written and read: a local path, or a URI that pyarrow understands (s3://, gs://,
file://...), one set of functions for both, and the one atomic write.

Every file gansweep itself writes goes through `atomic` (or `write_bytes` / `write_text`, which use it): the bytes
go to a temporary name unique to the process and the call (`.<name>.<pid>.<random>.tmp`, beside the file), then one
rename puts them in place, so a reader never sees half a file and two processes writing the same file never share a
temporary one. On a URI the temporary file is written through `pyarrow.fs` and moved in the same filesystem (an
object store's move is a copy then a delete: the name appears whole or not at all). Readers (`listdir`,
`read_text`, `fetch`, `fetch_files`) and folder copies (`download_dir`, `upload_dir`) take either kind of path.
Tune's own files (results, checkpoints) are Tune's; this module reads them.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path


def is_uri(path) -> bool:
    return "://" in str(path)


def join(base, *parts: str) -> str:
    if is_uri(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return str(Path(base, *parts))


def absolute(path) -> str:
    """Local paths become absolute (Tune chdirs into trial dirs); URIs pass through."""
    return str(path) if is_uri(path) else os.path.abspath(os.path.expanduser(str(path)))


def filesystem(path) -> tuple:
    """(pyarrow filesystem, the path inside it) of a local path or a URI."""
    import pyarrow.fs

    if is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(str(path))
    return pyarrow.fs.LocalFileSystem(), absolute(path)


def temporary_name(name: str) -> str:
    """The temporary name `atomic` writes `name` under first: hidden, unique to this process and this call."""
    return f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


@contextlib.contextmanager
def atomic(path):
    """Write the file at `path` atomically: yields a local path to write to (any writer: torch.save, Parquet, a
    PIL save...); when the block ends without an error, the file takes its place in one rename (on a URI: uploaded
    under a temporary name, then moved); on an error nothing is left behind."""
    if not is_uri(path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(temporary_name(path.name))
        try:
            yield str(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return
    fs, p = filesystem(path)
    parent, name = posixpath.split(p)
    with tempfile.TemporaryDirectory(prefix="gansweep-put-") as work:
        local = os.path.join(work, name)
        yield local
        fs.create_dir(parent, recursive=True)  # a no-op on object stores
        tmp = posixpath.join(parent, temporary_name(name))
        try:
            with open(local, "rb") as src, fs.open_output_stream(tmp) as out:
                shutil.copyfileobj(src, out)
            fs.move(tmp, p)
        finally:
            _delete_quietly(fs, tmp)


def _delete_quietly(fs, path: str) -> None:
    import pyarrow.fs

    if fs.get_file_info(path).type == pyarrow.fs.FileType.File:
        fs.delete_file(path)


def write_bytes(path, data: bytes) -> None:
    with atomic(path) as tmp:
        Path(tmp).write_bytes(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode())


def exists(path) -> bool:
    if not is_uri(path):
        return os.path.exists(path)
    import pyarrow.fs

    fs, p = filesystem(path)
    return fs.get_file_info(p).type != pyarrow.fs.FileType.NotFound


def read_bytes(path) -> bytes:
    if not is_uri(path):
        return Path(path).read_bytes()
    fs, p = filesystem(path)
    with fs.open_input_stream(p) as f:
        return f.read()


def read_text(path) -> str:
    return read_bytes(path).decode()


def listdir(path) -> tuple[list[str], list[str]]:
    """(sub-folder names, file names) of the folder at `path`, sorted; empty when it doesn't exist."""
    if not is_uri(path):
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            return [], []
        return sorted(e.name for e in entries if e.is_dir()), sorted(e.name for e in entries if e.is_file())
    import pyarrow.fs

    fs, p = filesystem(path)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(p, allow_not_found=True))
    return (sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory),
            sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.File))


def fetch(path, into) -> str:
    """A local path to the file at `path`: itself when local, else a copy in the local folder `into` (kept: a
    second call for the same file copies nothing)."""
    if not is_uri(path):
        return str(path)
    parent, name = str(path).rsplit("/", 1)
    found = fetch_files(*filesystem(parent), [name], into)
    if name not in found:
        raise FileNotFoundError(f"no file at {path}")
    return found[name]


def fetch_files(fs, base: str, names, into) -> dict[str, str]:
    """{name: local path} for the files `names` under `base` of the pyarrow filesystem `fs` that exist (a Tune
    checkpoint's `filesystem` and `path`, say): on a local filesystem the files themselves, otherwise copies in the
    local folder `into`."""
    import pyarrow.fs

    found = {}
    for name in names:
        src = f"{base.rstrip('/')}/{name}"
        if fs.get_file_info(src).type != pyarrow.fs.FileType.File:
            continue
        if isinstance(fs, pyarrow.fs.LocalFileSystem):
            found[name] = src
            continue
        dest = os.path.join(str(into), name)
        if not os.path.exists(dest):
            os.makedirs(str(into), exist_ok=True)
            with atomic(dest) as tmp, fs.open_input_stream(src) as f, open(tmp, "wb") as out:
                shutil.copyfileobj(f, out)
        found[name] = dest
    return found


def download_dir(uri, local) -> bool:
    """Copy a storage folder to a local one; False when it doesn't exist. Local paths are used in place."""
    if not exists(uri):
        return False
    if is_uri(uri):
        import pyarrow.fs

        fs, p = filesystem(uri)
        Path(local).mkdir(parents=True, exist_ok=True)
        pyarrow.fs.copy_files(p, str(local), source_filesystem=fs, destination_filesystem=pyarrow.fs.LocalFileSystem())
    return True


def upload_dir(local, uri, *, replace: bool = False) -> None:
    """Copy a local folder to a storage folder (`replace`: whatever the storage folder held goes first); nothing
    to do for a local destination, which is the folder itself."""
    if not is_uri(uri):
        return
    import pyarrow.fs

    fs, p = filesystem(uri)
    fs.create_dir(p, recursive=True)
    if replace:
        fs.delete_dir_contents(p, missing_dir_ok=True)
    pyarrow.fs.copy_files(str(local), p, source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs)

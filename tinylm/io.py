"""Saving and loading without pickle, and without half-written files.

Every file tinylm writes (vocabularies, tokenizers, word vectors, checkpoints) goes through
``atomic_write``: the bytes go to a temporary file in the same folder, which is flushed,
synced and then renamed over the target in one step (``os.replace`` is atomic on POSIX and
Windows). A crash or a full disk mid-write leaves the old file intact, never a truncated one.
Arrays are stored as ``.npz`` and read back with ``allow_pickle=False``; everything else is
JSON.
"""
import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import TinyLMError

# the process's umask, read once: mkstemp creates files as 0600, a new file gets 0666 & ~umask
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """``with atomic_write(path, "w", encoding="utf-8") as f: ...``: ``path`` appears, complete,
    only when the block ends without an exception."""
    path = Path(path)
    if not path.parent.exists():
        raise TinyLMError(f"cannot write {path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            # keep the permissions of the file being replaced; a new one gets 0666 & ~umask
            os.fchmod(f.fileno(), path.stat().st_mode & 0o7777 if path.exists()
                      else 0o666 & ~_UMASK)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_json(path, obj):
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)


def load_json(path, what="file"):
    """The JSON object in ``path``; a missing or malformed file is a TinyLMError naming it."""
    path = Path(path)
    _check_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TinyLMError(f"cannot load {what}: {path} is not valid UTF-8 JSON ({exc})") from None


def _check_file(path, what):
    if not path.exists():
        raise TinyLMError(f"cannot load {what}: {path} does not exist")
    if not path.is_file():
        raise TinyLMError(f"cannot load {what}: {path} is not a file")


def save_npz(path, **arrays):
    """``np.savez`` through ``atomic_write``; the name is kept as given (no ``.npz`` added)."""
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path, what="file"):
    """A dict of the arrays in ``path``, read with ``allow_pickle=False``."""
    path = Path(path)
    _check_file(path, what)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):     # a bare .npy holds one array
            raise ValueError("a single .npy array, not an .npz archive")
        with data:
            return {name: data[name] for name in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise TinyLMError(f"cannot load {what}: {path} is not an .npz archive of plain "
                          f"arrays ({exc})") from None

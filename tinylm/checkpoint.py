"""Checkpoints: a state dict and its metadata, in safetensors or ``.npz``, never pickle.

    tinylm.checkpoint.save("ckpt.safetensors", model.state_dict(), {"config": {...}})
    state, metadata = tinylm.checkpoint.load("ckpt.safetensors")

The format follows the file name: ``.safetensors`` or ``.npz``. Both are written atomically
(a temporary file renamed over the target; see ``tinylm.io``), so a crash mid-save leaves
the previous checkpoint intact.

safetensors is a simple format, written here without the ``safetensors`` package (a test
checks that the package reads what we write, and we read what it writes):

    8 bytes     N, the header length, unsigned little-endian
    N bytes     a JSON header: {name: {"dtype": "F32", "shape": [...],
                "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
    the rest    every tensor's bytes, C order, little-endian, at its offsets

Metadata values must be strings there, so ours is stored as one JSON string under
``"tinylm"``. In ``.npz`` it is a 0-d unicode array named ``__metadata__``.

Both formats also carry a SHA-256 checksum of everything else in the file (the tensor table,
the metadata, every tensor's bytes): ``"tinylm.sha256"`` in the safetensors metadata, a 0-d
array ``__sha256__`` in ``.npz``. ``load`` recomputes it, so a truncated, damaged or edited
file is refused with a clear error instead of loading wrong numbers. Files written by other
programs (the ``safetensors`` package) have no checksum and are checked for consistency only.
Loading never runs code: JSON and raw bytes, no pickle.
"""
import hashlib
import json
from pathlib import Path

import numpy as np

from .errors import TinyLMError
from .io import atomic_write, load_npz, save_npz

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_METADATA_KEY = "__metadata__"
_CHECKSUM_KEY = "tinylm.sha256"          # in the safetensors metadata
_NPZ_CHECKSUM = "__sha256__"             # an array of the .npz


def _format(path):
    suffix = Path(path).suffix
    if suffix not in (".safetensors", ".npz"):
        raise TinyLMError(f"checkpoint: the file name must end in .safetensors or .npz, "
                          f"got {str(path)!r}")
    return suffix


def _as_arrays(state_dict):
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str) or not name or name in (_METADATA_KEY, _NPZ_CHECKSUM):
            raise TinyLMError(f"checkpoint: tensor names must be non-empty strings other than "
                              f"{_METADATA_KEY!r} and {_NPZ_CHECKSUM!r}, got {name!r}")
        array = np.asarray(getattr(value, "data", value))
        if hasattr(array, "get"):                      # a CuPy array: bring it to the host
            array = array.get()
        if array.dtype not in _CODES:
            raise TinyLMError(f"checkpoint: {name!r} has dtype {array.dtype}; supported: "
                              f"{sorted(str(d) for d in _CODES)}")
        arrays[name] = array if array.flags.c_contiguous else array.copy(order="C")
    return arrays


def save(path, state_dict, metadata=None):
    """Write ``state_dict`` (name -> array or Tensor) and ``metadata`` (a JSON-able dict)."""
    suffix = _format(path)
    arrays = _as_arrays(state_dict)
    try:
        meta_json = json.dumps(metadata or {})
    except TypeError as exc:
        raise TinyLMError(f"checkpoint: metadata must be JSON-serialisable ({exc})") from None
    little = {name: array.astype(array.dtype.newbyteorder("<"), copy=False)
              for name, array in arrays.items()}
    if suffix == ".npz":
        save_npz(path, **arrays, **{_METADATA_KEY: np.array(meta_json),
                                    _NPZ_CHECKSUM: np.array(_npz_digest(little, meta_json))})
        return
    header, offset = {}, 0
    for name, array in arrays.items():
        header[name] = {"dtype": _CODES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    header[_METADATA_KEY] = {"tinylm": meta_json}
    digest = _digest(header, (memoryview(a).cast("B") if a.size else b"" for a in
                              little.values()))
    header[_METADATA_KEY][_CHECKSUM_KEY] = digest
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)                     # keep the data 8-byte aligned
    with atomic_write(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for array in little.values():
            f.write(array.tobytes())


def _digest(header, chunks):
    """SHA-256 of the header (keys sorted, without the checksum itself) and the data bytes."""
    h = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _npz_digest(arrays, meta_json):
    """The same idea for ``.npz``: names, dtypes, shapes, the metadata, then the bytes."""
    table = {name: [a.dtype.str, list(a.shape)] for name, a in arrays.items()}
    return _digest({"tensors": table, "metadata": meta_json},
                   (np.ascontiguousarray(a).tobytes() for a in arrays.values()))


def load(path):
    """``(state_dict, metadata)``: a dict of NumPy arrays and the metadata dict saved with it.

    Raises ``TinyLMError`` naming the file and what is wrong with it: missing, truncated,
    a header that does not describe the data, a checksum that does not match."""
    suffix = _format(path)
    path = Path(path)
    if not path.is_file():
        raise TinyLMError(f"checkpoint: {path} does not exist")
    if suffix == ".npz":
        return _load_npz(path)
    raw = path.read_bytes()
    corrupt = f"checkpoint: {path} is not a valid safetensors file"
    if len(raw) < 8:
        raise TinyLMError(f"{corrupt} ({len(raw)} bytes; truncated?)")
    n = int.from_bytes(raw[:8], "little")
    if 8 + n > len(raw):
        raise TinyLMError(f"{corrupt} (the header says {n} bytes but the file has only "
                          f"{len(raw) - 8} after the length; truncated?)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TinyLMError(f"{corrupt} (unreadable header)") from None
    if not isinstance(header, dict):
        raise TinyLMError(f"{corrupt} (the header is a JSON {type(header).__name__}, expected "
                          f"an object)")
    data = memoryview(raw)[8 + n:]
    meta = header.pop(_METADATA_KEY, None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise TinyLMError(f"{corrupt} (__metadata__ must map names to strings)")
    expected = meta.pop(_CHECKSUM_KEY, None)
    state, end_of_data = {}, 0
    for name, info in header.items():
        dtype, shape, begin, end = _entry(name, info, len(data), corrupt)
        state[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape).astype(
            dtype.newbyteorder("="))
        end_of_data = max(end_of_data, end)
    if end_of_data != len(data):
        raise TinyLMError(f"{corrupt} (the tensors end at byte {end_of_data} of the data, "
                          f"but it has {len(data)} bytes)")
    if expected is not None:
        header[_METADATA_KEY] = meta
        if _digest(header, [data]) != expected:
            raise TinyLMError(f"checkpoint: {path} is corrupt: its SHA-256 checksum does not "
                              f"match its contents (the file was damaged or edited after it "
                              f"was written); use an intact copy")
    return state, _metadata(meta.get("tinylm", "{}"), corrupt)


def _entry(name, info, n_data, corrupt):
    """One header entry checked: ``(dtype, shape, begin, end)``, or a TinyLMError."""
    try:
        code, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        ok = (code in _DTYPES and isinstance(shape, list)
              and all(isinstance(d, int) and d >= 0 for d in shape)
              and all(isinstance(o, int) for o in (begin, end)) and 0 <= begin <= end <= n_data)
    except (TypeError, KeyError, ValueError):
        ok = False
    if ok:
        dtype = np.dtype(_DTYPES[code]).newbyteorder("<")
        if end - begin == dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            return dtype, shape, begin, end
    raise TinyLMError(f"{corrupt} (tensor {name!r}: {str(info)[:200]} does not fit the "
                      f"{n_data} bytes of data)")


def _metadata(text, corrupt):
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        raise TinyLMError(f"{corrupt} (the tinylm metadata is not JSON)") from None
    if not isinstance(meta, dict):
        raise TinyLMError(f"{corrupt} (the tinylm metadata is a {type(meta).__name__}, "
                          f"expected a JSON object)")
    return meta


def _load_npz(path):
    arrays = load_npz(path, "checkpoint")
    corrupt = f"checkpoint: {path} is not a valid tinylm .npz checkpoint"
    meta_json = str(arrays.pop(_METADATA_KEY, np.array("{}")))
    expected = arrays.pop(_NPZ_CHECKSUM, None)
    if expected is not None:
        little = {name: a.astype(a.dtype.newbyteorder("<"), copy=False)
                  for name, a in arrays.items()}
        if _npz_digest(little, meta_json) != str(expected):
            raise TinyLMError(f"checkpoint: {path} is corrupt: its SHA-256 checksum does not "
                              f"match its contents (the file was damaged or edited after it "
                              f"was written); use an intact copy")
    return arrays, _metadata(meta_json, corrupt)

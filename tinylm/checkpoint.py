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
"""
import json
from pathlib import Path

import numpy as np

from .errors import TinyLMError
from .io import atomic_write, load_npz, save_npz

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_METADATA_KEY = "__metadata__"


def _format(path):
    suffix = Path(path).suffix
    if suffix not in (".safetensors", ".npz"):
        raise TinyLMError(f"checkpoint: the file name must end in .safetensors or .npz, "
                          f"got {str(path)!r}")
    return suffix


def _as_arrays(state_dict):
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str) or not name or name == _METADATA_KEY:
            raise TinyLMError(f"checkpoint: tensor names must be non-empty strings other than "
                              f"{_METADATA_KEY!r}, got {name!r}")
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
    if suffix == ".npz":
        save_npz(path, **arrays, **{_METADATA_KEY: np.array(meta_json)})
        return
    header, offset = {}, 0
    for name, array in arrays.items():
        header[name] = {"dtype": _CODES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    header[_METADATA_KEY] = {"tinylm": meta_json}
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)                     # keep the data 8-byte aligned
    with atomic_write(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for array in arrays.values():
            f.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def load(path):
    """``(state_dict, metadata)``: a dict of NumPy arrays and the metadata dict saved with it."""
    suffix = _format(path)
    path = Path(path)
    if not path.is_file():
        raise TinyLMError(f"checkpoint: {path} does not exist")
    if suffix == ".npz":
        arrays = load_npz(path, "checkpoint")
        meta = arrays.pop(_METADATA_KEY, np.array("{}"))
        return arrays, json.loads(str(meta))
    raw = path.read_bytes()
    corrupt = f"checkpoint: {path} is not a valid safetensors file"
    if len(raw) < 8:
        raise TinyLMError(f"{corrupt} ({len(raw)} bytes)")
    n = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TinyLMError(f"{corrupt} (unreadable header)") from None
    data = memoryview(raw)[8 + n:]
    meta = header.pop(_METADATA_KEY, None) or {}
    state = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES.get(info["dtype"], np.void)).newbyteorder("<")
        if info["dtype"] not in _DTYPES or end > len(data) or begin > end or \
                (end - begin) != dtype.itemsize * int(np.prod(info["shape"], dtype=np.int64)):
            raise TinyLMError(f"{corrupt} (tensor {name!r}: dtype {info['dtype']}, shape "
                              f"{info['shape']}, bytes {begin}..{end} of {len(data)})")
        state[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(
            info["shape"]).astype(dtype.newbyteorder("="))
    return state, json.loads(meta.get("tinylm", "{}"))

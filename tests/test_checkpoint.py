"""tinylm.checkpoint: safetensors and .npz round trips, atomic writes, corrupt files, and the
safetensors package (when installed) reading what we write and the other way round."""
import contextlib
import json

import numpy as np
import pytest

from tinylm import TinyLMError, checkpoint, io, nn

FORMATS = [".safetensors", ".npz"]


def _state(rng):
    return {"w": rng.standard_normal((3, 4)).astype(np.float32),
            "b": rng.standard_normal(4),                       # float64
            "ids": np.arange(6, dtype=np.int64).reshape(2, 3),
            "mask": np.array([True, False, True]),
            "half": np.array([1.5, -2.0], dtype=np.float16),
            "scalar": np.array(7, dtype=np.int32),
            "empty": np.zeros((0, 5), dtype=np.float32)}


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_keeps_names_dtypes_shapes_values_and_metadata(tmp_path, rng, suffix):
    state = _state(rng)
    meta = {"config": {"n_layer": 2, "name": "gpt"}, "step": 10, "text": "naïve 中文"}
    path = tmp_path / f"model{suffix}"
    checkpoint.save(path, state, meta)
    loaded, loaded_meta = checkpoint.load(path)
    assert loaded_meta == meta
    assert list(loaded) == list(state)
    for name, array in state.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].flags.writeable


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_module_state_dict_survives_the_trip(tmp_path, rng, suffix):
    lstm = nn.LSTM(3, 4, num_layers=2, seed=0)
    path = tmp_path / f"lstm{suffix}"
    checkpoint.save(path, lstm.state_dict(), {"kind": "lstm"})
    other = nn.LSTM(3, 4, num_layers=2, seed=1)
    other.load_state_dict(checkpoint.load(path)[0])
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(lstm(x)[0].numpy(), other(x)[0].numpy())


def test_safetensors_header_layout(tmp_path):
    path = tmp_path / "a.safetensors"
    checkpoint.save(path, {"x": np.array([1.0, 2.0], dtype=np.float32)}, {"k": 1})
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    assert header["x"] == {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    assert json.loads(header["__metadata__"]["tinylm"]) == {"k": 1}
    assert (8 + n) % 8 == 0 and len(raw) == 8 + n + 8
    assert np.frombuffer(raw[8 + n:], "<f4").tolist() == [1.0, 2.0]


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_failed_save_leaves_the_old_checkpoint(tmp_path, suffix, monkeypatch):
    path = tmp_path / f"model{suffix}"
    checkpoint.save(path, {"w": np.ones(3)}, {"step": 1})
    before = path.read_bytes()
    real_atomic_write = io.atomic_write

    @contextlib.contextmanager
    def disk_full_after_a_few_bytes(target, mode="wb", encoding=None):
        with real_atomic_write(target, mode, encoding) as f:
            yield _FailingFile(f)
    monkeypatch.setattr(io, "atomic_write", disk_full_after_a_few_bytes)
    monkeypatch.setattr(checkpoint, "atomic_write", disk_full_after_a_few_bytes)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"w": np.zeros(3)}, {"step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]   # no temp file left


class _FailingFile:
    """A file object that accepts 10 bytes, then fails like a full disk."""

    def __init__(self, f):
        self.f, self.written = f, 0

    def write(self, data):
        self.written += len(data)
        if self.written > 10:
            raise OSError("disk full")
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_bad_names_dtypes_and_metadata(tmp_path):
    with pytest.raises(TinyLMError, match="must end in .safetensors or .npz"):
        checkpoint.save(tmp_path / "model.pt", {"w": np.ones(2)})
    with pytest.raises(TinyLMError, match="dtype complex128"):
        checkpoint.save(tmp_path / "m.npz", {"w": np.ones(2, dtype=complex)})
    with pytest.raises(TinyLMError, match="non-empty strings"):
        checkpoint.save(tmp_path / "m.npz", {"": np.ones(2)})
    with pytest.raises(TinyLMError, match="JSON-serialisable"):
        checkpoint.save(tmp_path / "m.npz", {"w": np.ones(2)}, {"f": object()})
    with pytest.raises(TinyLMError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.safetensors")
    with pytest.raises(TinyLMError, match="folder .* does not exist"):
        checkpoint.save(tmp_path / "no" / "such" / "m.npz", {"w": np.ones(2)})


def test_corrupt_files_are_reported(tmp_path):
    good = tmp_path / "good.safetensors"
    checkpoint.save(good, {"w": np.arange(4, dtype=np.float32)})
    raw = good.read_bytes()
    cases = {"short": raw[:5], "header": raw[:8] + b"{not json" + raw[17:],
             "truncated": raw[:-4]}
    for name, data in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(TinyLMError, match="not a valid safetensors file"):
            checkpoint.load(path)
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"not a zip")
    with pytest.raises(TinyLMError, match="npz"):
        checkpoint.load(bad_npz)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(TinyLMError):
        checkpoint.load(path)


def test_the_safetensors_package_agrees(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy")
    state = {k: v for k, v in _state(rng).items()}
    ours = tmp_path / "ours.safetensors"
    checkpoint.save(ours, state, {"a": 1})
    theirs = st.load_file(str(ours))
    for name, array in state.items():
        np.testing.assert_array_equal(theirs[name], array)
        assert theirs[name].dtype == array.dtype
    written = tmp_path / "theirs.safetensors"
    st.save_file(state, str(written), metadata={"tinylm": json.dumps({"b": 2})})
    loaded, meta = checkpoint.load(written)
    assert meta == {"b": 2}
    for name, array in state.items():
        np.testing.assert_array_equal(loaded[name], array)

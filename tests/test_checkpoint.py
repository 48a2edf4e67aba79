"""tinylm.checkpoint: safetensors and .npz round trips, atomic writes, corrupt files, and the
safetensors package (when installed) reading what we write and the other way round."""
import contextlib
import json

import numpy as np
import pytest

from tinylm import ShapeError, TinyLMError, checkpoint, io, nn

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


# --- integrity: checksums, code never run, shapes checked against the model ----------------
class _Payload:
    """Unpickling this would create ``path``: the code a pickle-based loader would run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import pathlib
        return pathlib.Path(self.path).touch, ()


def test_loading_never_runs_code_from_the_file(tmp_path, monkeypatch):
    import pickle
    marker = tmp_path / "code_was_run"
    evil = tmp_path / "evil.npz"
    np.savez(evil, w=np.array([_Payload(marker)], dtype=object))

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle was used")
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    with pytest.raises(TinyLMError, match="not an .npz archive of plain arrays"):
        checkpoint.load(evil)
    assert not marker.exists()
    for suffix in FORMATS:                   # a normal load uses no pickle either
        path = tmp_path / f"ok{suffix}"
        checkpoint.save(path, {"w": np.ones(3)}, {"a": 1})
        assert checkpoint.load(path)[1] == {"a": 1}


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_damaged_or_edited_file_fails_its_checksum(tmp_path, rng, suffix):
    path = tmp_path / f"model{suffix}"
    state = {"w": rng.standard_normal((4, 4)), "b": np.arange(3, dtype=np.int64)}
    checkpoint.save(path, state, {"iter": 5})
    raw = path.read_bytes()
    if suffix == ".safetensors":            # one bit of one weight, in the data section
        damaged = raw[:-30] + bytes([raw[-30] ^ 0x04]) + raw[-29:]
    else:                                    # an .npz written again with a changed weight
        arrays = dict(np.load(path, allow_pickle=False))
        arrays["w"] = arrays["w"].copy()
        arrays["w"][0, 0] += 1e-12
        np.savez(path, **arrays)
        damaged = path.read_bytes()
    path.write_bytes(damaged)
    with pytest.raises(TinyLMError, match="is corrupt: its SHA-256 checksum does not match"):
        checkpoint.load(path)


@pytest.mark.parametrize("suffix", FORMATS)
def test_every_truncation_is_refused(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    checkpoint.save(path, {"w": np.arange(12.0).reshape(3, 4)}, {"iter": 1})
    raw = path.read_bytes()
    for cut in range(0, len(raw), max(1, len(raw) // 40)):
        path.write_bytes(raw[:cut])
        with pytest.raises(TinyLMError):
            checkpoint.load(path)


def test_a_checkpoint_of_another_shape_names_the_parameter(tmp_path):
    from tinylm.models import GPT, GPTConfig
    from tinylm.train import TrainConfig, Trainer

    def trainer(n_embd):
        model = GPT(GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=n_embd),
                    seed=0)
        batch = lambda split, r: (np.zeros((2, 8), int), np.zeros((2, 8), int))  # noqa: E731
        cfg = TrainConfig(max_iters=1, eval_interval=1, eval_iters=1, warmup_iters=0,
                          progress=False, out_dir=str(tmp_path / "run"))
        return Trainer(model, model.configure_optimizers(0.0, 1e-3, (0.9, 0.99)), batch, cfg)
    trainer(8).fit()
    other = trainer(16)
    before = other.model.state_dict()
    with pytest.raises(ShapeError, match=r"train: cannot resume from .*ckpt.safetensors: "
                                         r"load_state_dict: transformer.wte.weight has shape "
                                         r"\(5, 8\) in the state, expected \(5, 16\)"):
        other.fit(resume=True)
    after = other.model.state_dict()       # nothing was assigned
    assert all(np.array_equal(before[k], after[k]) for k in before)

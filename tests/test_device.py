"""Devices without a GPU: what ``cuda`` says when CuPy or the GPU is missing, that importing
tinylm never needs CuPy, the default device, and the device bookkeeping of tensors and
modules (``.to``, ``.device``, the mixed-device error), checked on a simulated GPU whose
arrays are a NumPy subclass.
"""
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import tinylm as tl
from tinylm import backend, cuda, kernels, nn
from tinylm.backend import DeviceError
from tinylm.cuda import CudaUnavailableError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter (from the repository root); (status, output)."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": ROOT, **env}, timeout=120)
    return done.returncode, done.stdout + done.stderr


# --- without CuPy ----------------------------------------------------------------------------
def test_import_never_imports_cupy():
    status, out = run_python(
        "import sys, tinylm, tinylm.functional, tinylm.nn, tinylm.models, tinylm.optim, "
        "tinylm.train\nprint('cupy' in sys.modules)")
    assert status == 0, out
    assert out.strip() == "False"


def test_without_cupy_everything_cpu_works_and_cuda_says_how_to_install():
    code = """
import sys
sys.modules['cupy'] = None                  # as if CuPy were not installed
import numpy as np, tinylm as tl
x = tl.Tensor([1.0, 2.0], requires_grad=True)
(x * x).sum().backward()
assert x.grad.tolist() == [2.0, 4.0] and x.device == 'cpu'
print(tl.cuda.is_available(), tl.cuda.device_count())
print(tl.cuda.reason())
try:
    x.to('cuda')
except tl.cuda.CudaUnavailableError as e:
    print(e)
"""
    status, out = run_python(code)
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0] == "False 0"
    assert lines[1].startswith("CuPy is not installed: pip install tinylm[gpu]")
    assert lines[2].startswith("device 'cuda' asked for, but CuPy is not installed: "
                               "pip install tinylm[gpu]")


def test_tinylm_device_cuda_without_cupy_fails_at_first_use_with_the_reason():
    code = """
import sys
sys.modules['cupy'] = None
import tinylm as tl                     # importing works, and says nothing
try:
    tl.Tensor([1.0])
except tl.cuda.CudaUnavailableError as e:
    print(e)
"""
    status, out = run_python(code, TINYLM_DEVICE="cuda")
    assert status == 0, out
    assert "from TINYLM_DEVICE" in out and "CuPy is not installed" in out


def test_chapter_device_cuda_without_cupy_ends_with_one_line():
    status, out = run_python("import sys\nsys.modules['cupy'] = None\n"
                             "from tinylm.chapter import Chapter\n"
                             "Chapter(1, 'x', argv=['--device', 'cuda'])")
    assert status == 2
    assert out.strip().splitlines()[-1] == (
        "chapter 01: --device cuda: device 'cuda' asked for, but CuPy is not installed: "
        "pip install tinylm[gpu] (import cupy failed: import of cupy halted; None in "
        "sys.modules)")


@pytest.mark.skipif(cuda.is_available(), reason="a GPU is here: --device cuda would train")
def test_cli_device_cuda_without_a_gpu_is_a_one_line_error(capsys):
    from tinylm.cli import main
    assert main(["train", "gpt", "--device", "cuda", "--max-iters", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("tinylm: error: --device cuda: device 'cuda' asked for, but ")
    assert cuda.reason() in err
    assert backend.default_device() == "cpu"


def test_tinylm_device_must_name_a_device():
    status, out = run_python("import tinylm", TINYLM_DEVICE="tpu")
    assert status != 0
    assert "TINYLM_DEVICE must be 'cpu' or 'cuda', got 'tpu'" in out


# --- CuPy installed, no GPU (a stand-in module whose CUDA runtime finds no device) ----------
@pytest.fixture
def cupy_without_gpu(monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.ModuleType("cupy")
    fake.__version__ = "14.2.0"
    fake.ndarray = type("ndarray", (), {})
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    cuda._forget()
    yield fake
    cuda._forget()


def test_cupy_without_gpu_names_the_gpu_and_passes_on_the_cuda_error(cupy_without_gpu):
    assert not cuda.is_available()
    assert cuda.device_count() == 0
    assert cuda.reason() == ("CuPy 14.2.0 is installed, but no CUDA GPU was found (the CUDA "
                             "runtime says: cudaErrorNoDevice: no CUDA-capable device is "
                             "detected)")
    with pytest.raises(CudaUnavailableError, match="no CUDA GPU was found"):
        tl.Tensor([1.0]).to("cuda")
    with pytest.raises(CudaUnavailableError, match="no CUDA GPU was found"):
        nn.Linear(2, 3).to("cuda")
    with pytest.raises(CudaUnavailableError, match="device 'cuda' asked for, but CuPy 14"):
        backend.set_default_device("cuda")
    assert backend.default_device() == "cpu"
    # CPU work is unaffected by CuPy being importable
    x = tl.Tensor([3.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [6.0]


def test_cuda_error_is_a_tinylm_error():
    assert issubclass(CudaUnavailableError, tl.TinyLMError)
    assert issubclass(DeviceError, tl.TinyLMError)


def test_unknown_devices_are_refused():
    with pytest.raises(DeviceError, match="unknown device 'tpu': expected 'cpu' or 'cuda'"):
        backend.to_device(np.ones(2), "tpu")
    with pytest.raises(DeviceError, match="expected a device"):
        tl.Tensor([1.0]).to("tpu")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        nn.Linear(2, 2).to("tpu")
    with pytest.raises(DeviceError, match="unknown device"):
        backend.set_default_device("metal")


def test_cpu_moves_are_free():
    x = tl.Tensor([1.0, 2.0])
    assert x.to("cpu") is x
    assert x.device == "cpu"
    layer = nn.Linear(2, 2, seed=0)
    w = layer.weight.data
    assert layer.to("cpu") is layer and layer.weight.data is w
    assert x.to(np.float64).dtype == np.float64          # .to also takes a dtype
    assert nn.Linear(2, 2).to("float64").weight.dtype == np.float64


def test_kernels_on_numpy_arrays_never_reach_the_gpu_module():
    x = np.ones((2, 3), np.float32)
    assert kernels.kernel("layer_norm_forward", x).__module__ == "tinylm.kernels.cpu"
    assert "tinylm.kernels.gpu" not in sys.modules


# --- a simulated GPU: "device arrays" are a NumPy subclass ----------------------------------
class DeviceArray(np.ndarray):
    """Stands in for cupy.ndarray: NumPy arithmetic, but a different type."""


def _on_device(value):
    if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
        return value.view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(_on_device(v) for v in value)
    return value


@pytest.fixture
def simulated_gpu(monkeypatch):
    """``cupy`` as NumPy on ``DeviceArray``s (kernels: the reference formulas, which call the
    array module), ``cupyx.scipy.special.erf`` for the exact GELU; one device."""
    fake = types.ModuleType("cupy")
    fake.__version__ = "simulated"
    fake.ndarray = DeviceArray
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    fake.asarray = lambda a, dtype=None: np.array(a, dtype=dtype).view(DeviceArray)
    fake.asnumpy = lambda a: np.array(a).view(np.ndarray)

    def numpy_on_device(name):
        attr = getattr(np, name)
        if not callable(attr) or isinstance(attr, (type, np.ufunc)):   # ufuncs keep .at
            return attr
        return lambda *a, **k: _on_device(attr(*a, **k))
    fake.__getattr__ = numpy_on_device
    special = types.ModuleType("cupyx.scipy.special")
    from tinylm.kernels.cpu import erf
    special.erf = lambda x: _on_device(erf(np.asarray(x)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "cupyx", types.ModuleType("cupyx"))
    monkeypatch.setitem(sys.modules, "cupyx.scipy", types.ModuleType("cupyx.scipy"))
    monkeypatch.setitem(sys.modules, "cupyx.scipy.special", special)
    cuda._forget()
    with kernels.use("reference"):      # the CUDA kernels need a real GPU (test_gpu.py)
        yield fake
    cuda._forget()
    backend.set_default_device("cpu")


def test_simulated_gpu_is_available(simulated_gpu):
    assert cuda.is_available() and cuda.reason() == "" and cuda.device_count() == 1


def test_tensor_to_round_trip_and_gradient_flows_back(simulated_gpu):
    x = tl.Tensor(np.arange(3.0), requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and isinstance(y.data, DeviceArray)
    assert y.to("cuda") is y
    loss = (y * y).sum()
    assert loss.device == "cuda"
    loss.backward()
    assert x.device == "cpu" and type(x.grad) is np.ndarray       # came back to the CPU
    np.testing.assert_array_equal(x.grad, [0.0, 2.0, 4.0])
    back = y.to("cpu")
    assert back.device == "cpu" and type(back.data) is np.ndarray
    np.testing.assert_array_equal(back.numpy(), [0.0, 1.0, 2.0])


def test_mixing_devices_in_one_op_names_the_op_and_both_devices(simulated_gpu):
    a = tl.Tensor(np.ones((2, 3))).to("cuda")
    b = tl.Tensor(np.ones((3, 2)))
    with pytest.raises(DeviceError, match=r"matmul: inputs are on different devices "
                                          r"\(cuda \(2, 3\), cpu \(3, 2\)\)"):
        a @ b
    with pytest.raises(DeviceError, match="add: inputs are on different devices"):
        b.T + a


def test_module_to_moves_parameters_buffers_and_gradients(simulated_gpu):
    model = nn.Sequential(nn.Linear(3, 4, seed=0), nn.LayerNorm(4))
    model.register_buffer("table", np.arange(4.0))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    x = tl.Tensor(np.ones((2, 3), np.float32))
    model(x).sum().backward()
    model.to("cuda")
    assert all(p.device == "cuda" and isinstance(p.grad, DeviceArray)
               for p in model.parameters())
    assert isinstance(model.table, DeviceArray)
    out = model(x.to("cuda"))
    assert out.device == "cuda"
    state = model.state_dict()                       # always NumPy, for saving
    assert all(type(v) is np.ndarray for v in state.values())
    for k in before:
        np.testing.assert_array_equal(state[k], before[k])
    model.to("cpu")
    assert all(p.device == "cpu" for p in model.parameters())


def test_default_device_puts_new_tensors_and_modules_on_the_gpu(simulated_gpu):
    from tinylm.models import GPT, GPTConfig
    assert backend.set_default_device("cuda") == "cpu"
    assert tl.Tensor([1.0, 2.0]).device == "cuda"
    assert tl.Tensor(np.ones(2)).device == "cuda"
    cpu_tensor = tl.Tensor(np.ones(2)).to("cpu")
    assert cpu_tensor.device == "cpu"                     # an explicit move is respected
    assert (cpu_tensor + 1).device == "cpu"               # and ops on it stay there
    assert cpu_tensor.detach().device == "cpu"
    # GPT re-initialises its weights with NumPy inside __init__: still all on the GPU
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8), seed=0)
    assert {p.device for p in model.parameters()} == {"cuda"}
    backend.set_default_device("cpu")
    assert tl.Tensor([1.0]).device == "cpu"


def test_gpt_training_step_on_the_simulated_gpu_matches_the_cpu(simulated_gpu):
    """The whole path a GPU step takes outside the kernels: NumPy token ids indexing tables
    on the device, masks following the scores, AdamW state made on the device."""
    from tinylm.models import GPT, GPTConfig
    from tinylm.optim import clip_grad_norm_
    config = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=8)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (2, 3, 8))
    losses, states = [], []
    for device in ("cpu", "cuda"):
        model = GPT(config, seed=0).to(device)
        opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
        for _ in range(2):
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        assert loss.device == device
        losses.append(loss.item())
        states.append(model.state_dict())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for k in states[0]:
        np.testing.assert_allclose(states[1][k], states[0][k], rtol=1e-5, atol=1e-6)


def test_word2vec_on_cuda_needs_a_gpu(cupy_without_gpu):
    from tinylm.embeddings import Word2Vec
    with pytest.raises(CudaUnavailableError, match=r"Word2Vec\(device='cuda'\) asked for"):
        Word2Vec(device="cuda")


# --- word2vec's GPU pipeline, host half, with the reference update ---------------------------
def test_word2vec_gpu_examples_follow_the_window_rule():
    from tinylm.kernels import word2vec_gpu
    corpus = np.arange(20, dtype=np.int32)                  # every word distinct
    offsets = np.array([0, 7, 7, 20], np.int64)             # an empty sentence in between
    rng = np.random.default_rng(0)
    centres, positions, ctx_offsets, ctx_ids, kept = word2vec_gpu.make_examples(
        corpus, offsets, 0, 3, np.zeros(0, np.int64), 3, True, rng)
    assert kept == 20 and len(centres) == len(ctx_ids) and np.all(np.diff(positions) >= 0)
    sentence = np.searchsorted(offsets, np.arange(20), side="right") - 1
    assert np.all(sentence[centres] == sentence[ctx_ids])      # never across sentences
    assert np.all((np.abs(centres - ctx_ids) >= 1) & (np.abs(centres - ctx_ids) <= 3))
    # a centre's reduced window is symmetric: it sees +d exactly when it sees -d (in-sentence)
    pairs = set(zip(centres.tolist(), ctx_ids.tolist()))
    for c, o in pairs:
        mirror = 2 * c - o
        if 0 <= mirror < 20 and sentence[mirror] == sentence[c]:
            assert (c, mirror) in pairs
    cbow = word2vec_gpu.make_examples(corpus, offsets, 0, 3, np.zeros(0, np.int64), 3, False,
                                      np.random.default_rng(0))
    assert len(cbow[0]) == 20 and cbow[2][-1] == len(cbow[3])


def test_word2vec_gpu_negatives_skip_the_true_word_and_follow_the_distribution():
    from tinylm.embeddings.word2vec import alias_table
    from tinylm.kernels import word2vec_gpu
    p = np.array([0.5, 0.3, 0.15, 0.05])
    threshold, alias = alias_table(p)
    centres = np.zeros(20000, np.int64)
    targets = word2vec_gpu.draw_targets(centres, 5, threshold, alias, np.random.default_rng(1))
    assert targets.shape == (20000, 6) and np.all(targets[:, 0] == 0)
    negatives = targets[:, 1:]
    assert np.all(negatives != 0)                       # the centre is always skipped (-1)
    drawn = negatives[negatives >= 0]
    share = np.bincount(drawn, minlength=4)[1:] / len(drawn)
    np.testing.assert_allclose(share, p[1:] / p[1:].sum(), atol=0.01)
    assert np.mean(negatives == -1) == pytest.approx(0.5, abs=0.01)


def test_word2vec_gpu_epoch_with_the_reference_update_learns():
    """The GPU epoch's host half driving the CPU step: the loss of the same data falls."""
    from tinylm.embeddings import Word2Vec
    from tinylm.kernels import word2vec_gpu
    rng = np.random.default_rng(0)
    sentences = [[f"w{rng.integers(0, 5) * 2 + (i % 2)}" for i in range(12)] for _ in range(60)]
    model = Word2Vec(vector_size=16, window=2, min_count=1, negative=3, sample=0, sg=1,
                     seed=0)
    model.build_vocab(sentences)
    corpus, offsets, _ = model._encode(sentences)
    syn0, syn1 = model.wv.vectors.copy(), model.syn1neg.copy()
    losses = []
    for epoch in range(4):
        loss, effective = word2vec_gpu.train_epoch(
            syn0, syn1, corpus, offsets, model.alias_threshold, model.alias_index,
            model.sample_ints, True, 2, 3, epoch, 4, 0.05, 0.001, rng, True,
            chunk_words=200)
        assert effective == len(corpus)
        losses.append(loss)
    assert losses[-1] < 0.9 * losses[0]
    assert not np.allclose(syn0, model.wv.vectors)

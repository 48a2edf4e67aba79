"""The CUDA kernels of ``kernels/gpu.py`` and ``kernels/word2vec_gpu.py``, run on the CPU.

``cuda_emulator`` compiles each kernel's CUDA C with g++ (threads and barriers standing in for
a block), so the kernels' arithmetic, indexing, tiling, masking and reductions are checked
against the NumPy reference on every machine, GPU or not. ``test_gpu.py`` runs the same
comparisons on a real GPU. Skipped without a C++20 compiler.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import cuda_emulator
from tinylm.kernels import reference

pytestmark = pytest.mark.skipif(cuda_emulator.compiler() is None,
                                reason="no g++ to build the CPU emulation of the CUDA kernels")
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
KERNELS = Path(__file__).resolve().parent.parent / "tinylm" / "kernels"


def _load(name, fake):
    """Import ``tinylm/kernels/<name>.py`` as a private copy bound to the fake ``cupy``,
    leaving ``sys.modules`` as it was (no later test sees the fake)."""
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = fake
    try:
        spec = importlib.util.spec_from_file_location(f"tinylm.kernels._emulated_{name}",
                                                      KERNELS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    return module


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return cuda_emulator.fake_cupy(tmp_path_factory.mktemp("cuda_emulator"))


@pytest.fixture(scope="module")
def gpu(fake):
    return _load("gpu", fake)


@pytest.fixture(scope="module")
def w2v(fake):
    return _load("word2vec_gpu", fake)


def close(a, b, dtype):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(gpu, dtype, approximate):
    rng = np.random.default_rng(0)
    x, g = (rng.standard_normal((5, 300)).astype(dtype) for _ in range(2))
    y, saved = gpu.gelu_forward(x, approximate)
    y_ref, saved_ref = reference.gelu_forward(x, approximate)
    close(y, y_ref, dtype)
    close(saved, saved_ref, dtype)
    close(gpu.gelu_backward(x, saved, g, approximate),
          reference.gelu_backward(x, saved_ref, g, approximate), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("cols", [1, 7, 300, 1000])
def test_softmax_rows(gpu, dtype, op, cols):
    rng = np.random.default_rng(1)
    x, g = (3 * rng.standard_normal((4, cols)).astype(dtype) for _ in range(2))
    y = getattr(gpu, op + "_forward")(x)
    y_ref = getattr(reference, op + "_forward")(x)
    close(y, y_ref, dtype)
    close(getattr(gpu, op + "_backward")(y, g), getattr(reference, op + "_backward")(y_ref, g),
          dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(gpu, dtype, smoothing):
    rng = np.random.default_rng(2)
    x = (3 * rng.standard_normal((6, 300))).astype(dtype)
    target = rng.integers(0, 300, 6)
    valid = np.array([1, 1, 0, 1, 1, 1], bool)
    target[2] = -100                                   # an ignored row: never read
    loss, lse = gpu.cross_entropy_forward(x, target, valid, smoothing)
    loss_ref, lse_ref = reference.cross_entropy_forward(x, target, valid, smoothing)
    close(loss, loss_ref, dtype)
    close(lse, lse_ref, dtype)
    for row_scale in (np.asarray(0.25, dtype), rng.standard_normal(6).astype(dtype)):
        close(gpu.cross_entropy_backward(x, lse, target, valid, smoothing, row_scale),
              reference.cross_entropy_backward(x, lse_ref, target, valid, smoothing,
                                               row_scale), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(gpu, dtype):
    rng = np.random.default_rng(3)
    x = (2 + 3 * rng.standard_normal((5, 333))).astype(dtype)
    g = rng.standard_normal((5, 333)).astype(dtype)
    x_hat, inv_std = gpu.layer_norm_forward(x, 1e-5)
    x_hat_ref, inv_std_ref = reference.layer_norm_forward(x, 1e-5)
    close(x_hat, x_hat_ref, dtype)
    close(inv_std, inv_std_ref, dtype)
    close(gpu.layer_norm_backward(x_hat, inv_std, g),
          reference.layer_norm_backward(x_hat_ref, inv_std_ref, g), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_backward_adds_repeated_ids(gpu, dtype):
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 7, 40)                       # 40 rows into 7: ids repeat
    g = rng.standard_normal((40, 16)).astype(dtype)
    close(gpu.embedding_backward(g, ids, 7), reference.embedding_backward(g, ids, 7), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_step(gpu, dtype, decoupled, amsgrad):
    rng = np.random.default_rng(5)
    p, g = (rng.standard_normal(1000).astype(dtype) for _ in range(2))
    state = [np.abs(rng.standard_normal(1000)).astype(dtype) for _ in range(3)]
    mine, ref = [p.copy()] + [s.copy() for s in state], [p.copy()] + [s.copy() for s in state]
    for arrays, step in ((mine, gpu.adam_step), (ref, reference.adam_step)):
        step(arrays[0], g, arrays[1], arrays[2], 1e-3, 0.9, 0.99, 1e-8, 3, 0.1, decoupled,
             arrays[3] if amsgrad else None)
    for a, b in zip(mine, ref):
        close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_and_gru_cell_backward(gpu, dtype):
    rng = np.random.default_rng(6)
    B, H = 3, 20
    gates, rzn = rng.random((B, 4 * H)).astype(dtype), rng.random((B, 3 * H)).astype(dtype)
    tanh_c = np.tanh(rng.standard_normal((B, H))).astype(dtype)
    c_prev, dh, dc, u, h_prev = (rng.standard_normal((B, H)).astype(dtype) for _ in range(5))
    results = []
    for module in (gpu, reference):
        dc_, d_pre = dc.copy(), np.empty((B, 4 * H), dtype)
        module.lstm_cell_backward(gates, tanh_c, c_prev, dh, dc_, d_pre)
        dh_, d_x, d_h = dh.copy(), np.empty((B, 3 * H), dtype), np.empty((B, 3 * H), dtype)
        module.gru_cell_backward(rzn, u, h_prev, dh_, d_x, d_h)
        results.append((dc_, d_pre, dh_, d_x, d_h))
    for a, b in zip(*results):
        close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L, S, dk, dv, offset", [
    (37, 37, 16, 16, 0),        # causal self-attention, a partial last tile
    (37, 37, 16, 8, None),      # no mask, value width != key width
    (20, 45, 8, 12, 25),        # the last queries of a longer sequence (a key/value cache)
    (70, 70, 64, 64, 0),        # a GPT head: several tiles each way
])
def test_streaming_attention(gpu, dtype, L, S, dk, dv, offset):
    rng = np.random.default_rng(7)
    q, g = (rng.standard_normal((2, L, d)).astype(dtype) for d in (dk, dv))
    k, v = (rng.standard_normal((2, S, d)).astype(dtype) for d in (dk, dv))
    scale = dk ** -0.5
    out, lse = gpu.attention_forward(q, k, v, scale, offset)
    out_ref, lse_ref = reference.attention_forward(q, k, v, scale, offset)
    close(out, out_ref, dtype)
    close(lse, lse_ref, dtype)
    for a, b in zip(gpu.attention_backward(q, k, v, out, lse, g, scale, offset),
                    reference.attention_backward(q, k, v, out_ref, lse_ref, g, scale, offset)):
        close(a, b, dtype)


def test_attention_tiles_fit_in_shared_memory(gpu):
    assert gpu.attention_tile(64, 64, np.float32) == 32
    assert gpu.attention_tile(64, 64, np.float32, backward=True) == 16
    assert gpu.attention_tile(64, 64, np.float64) == 16
    assert gpu.attention_tile(100000, 100000, np.float32) == 0   # the reference runs instead


def _sgns_batch(rng, dtype, V=50, d=37):
    syn0, syn1 = ((0.3 * rng.standard_normal((V, d))).astype(dtype) for _ in range(2))
    return syn0, syn1


@pytest.mark.parametrize("dtype", DTYPES)
def test_word2vec_update_one_example_at_a_time_is_the_cpu_step(w2v, dtype):
    """Launched one example at a time the kernel must be word2vec_cpu's step exactly,
    including a repeated negative (the second sees the first's update) and a skipped one."""
    rng = np.random.default_rng(8)
    syn0, syn1 = _sgns_batch(rng, dtype)
    ctx_offsets = np.array([0, 1, 3, 4, 7, 8, 10], np.int64)
    ctx_ids = rng.integers(0, 50, 10).astype(np.int32)
    targets = rng.integers(0, 50, (6, 4)).astype(np.int32)
    targets[2, 3] = -1
    targets[4, 1] = targets[4, 2]
    alphas = np.linspace(0.05, 0.01, 6).astype(dtype)
    ref0, ref1 = syn0.copy(), syn1.copy()
    loss_ref = w2v.update_reference(ref0, ref1, ctx_offsets, ctx_ids, targets, alphas)
    losses = []
    for e in range(6):
        ctx = ctx_ids[ctx_offsets[e]:ctx_offsets[e + 1]].copy()
        losses.append(w2v.update_gpu(syn0, syn1, np.array([0, len(ctx)], np.int64), ctx,
                                     targets[e:e + 1].copy(), alphas[e:e + 1].copy())[0])
    tol = 4 * TOLERANCE[dtype]
    np.testing.assert_allclose(syn0, ref0, atol=tol)
    np.testing.assert_allclose(syn1, ref1, atol=tol)
    np.testing.assert_allclose(losses, loss_ref, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_word2vec_batch_of_disjoint_examples_is_sequential(w2v, dtype):
    rng = np.random.default_rng(9)
    syn0, syn1 = _sgns_batch(rng, dtype)
    ctx_offsets, ctx_ids = np.array([0, 1, 2, 4], np.int64), np.array([1, 2, 3, 4], np.int32)
    targets = np.array([[10, 11, 12], [13, 14, 15], [16, 17, -1]], np.int32)
    alphas = np.full(3, 0.05, dtype)
    ref0, ref1 = syn0.copy(), syn1.copy()
    loss_ref = w2v.update_reference(ref0, ref1, ctx_offsets, ctx_ids, targets, alphas)
    loss = w2v.update_gpu(syn0, syn1, ctx_offsets, ctx_ids, targets, alphas)
    tol = 4 * TOLERANCE[dtype]
    np.testing.assert_allclose(syn0, ref0, atol=tol)
    np.testing.assert_allclose(syn1, ref1, atol=tol)
    np.testing.assert_allclose(loss, loss_ref, rtol=tol)

"""On a real NVIDIA GPU: every CUDA kernel against the NumPy reference (1e-5 in float32, 1e-12
in float64), tensors and modules moved there and back, a GPT and an LSTM language-model
training step on ``cuda`` equal to the CPU one, and word2vec's GPU update against the CPU
step. Skipped, with the reason, where ``tinylm.cuda.is_available()`` is False (no CuPy, or
no GPU); ``test_gpu_emulated.py`` runs the same kernels on the CPU everywhere.
"""
import numpy as np
import pytest

import tinylm as tl
from tinylm import cuda, kernels
from tinylm.kernels import reference

pytestmark = pytest.mark.skipif(not cuda.is_available(),
                                reason=cuda.reason() or "no CUDA GPU")
if cuda.is_available():
    import cupy
    from tinylm.kernels import gpu, word2vec_gpu

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]


def close(a, b, dtype, scale=1):
    a = cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.asarray(a)
    tol = scale * TOLERANCE[dtype]
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=tol, atol=tol)


def on_gpu(*arrays):
    return tuple(cupy.asarray(a) for a in arrays)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(dtype, approximate):
    rng = np.random.default_rng(0)
    x, g = (rng.standard_normal((64, 300)).astype(dtype) for _ in range(2))
    y, saved = gpu.gelu_forward(*on_gpu(x), approximate)
    y_ref, saved_ref = reference.gelu_forward(x, approximate)
    close(y, y_ref, dtype)
    close(gpu.gelu_backward(*on_gpu(x), saved, cupy.asarray(g), approximate),
          reference.gelu_backward(x, saved_ref, g, approximate), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("cols", [1, 7, 300, 50304])
def test_softmax_rows(dtype, op, cols):
    rng = np.random.default_rng(1)
    x, g = (3 * rng.standard_normal((8, cols)).astype(dtype) for _ in range(2))
    y = getattr(gpu, op + "_forward")(cupy.asarray(x))
    y_ref = getattr(reference, op + "_forward")(x)
    close(y, y_ref, dtype)
    close(getattr(gpu, op + "_backward")(y, cupy.asarray(g)),
          getattr(reference, op + "_backward")(y_ref, g), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(dtype, smoothing):
    rng = np.random.default_rng(2)
    x = (3 * rng.standard_normal((64, 1000))).astype(dtype)
    target = rng.integers(0, 1000, 64)
    valid = rng.random(64) > 0.2
    target[~valid] = -100
    loss, lse = gpu.cross_entropy_forward(*on_gpu(x, target, valid), smoothing)
    loss_ref, lse_ref = reference.cross_entropy_forward(x, target, valid, smoothing)
    close(loss, loss_ref, dtype)
    close(lse, lse_ref, dtype)
    scale = rng.standard_normal(64).astype(dtype)
    close(gpu.cross_entropy_backward(*on_gpu(x), lse, *on_gpu(target, valid), smoothing,
                                     cupy.asarray(scale)),
          reference.cross_entropy_backward(x, lse_ref, target, valid, smoothing, scale), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(dtype):
    rng = np.random.default_rng(3)
    x = (2 + 3 * rng.standard_normal((64, 768))).astype(dtype)
    g = rng.standard_normal((64, 768)).astype(dtype)
    x_hat, inv_std = gpu.layer_norm_forward(cupy.asarray(x), 1e-5)
    x_hat_ref, inv_std_ref = reference.layer_norm_forward(x, 1e-5)
    close(x_hat, x_hat_ref, dtype)
    close(inv_std, inv_std_ref, dtype)
    close(gpu.layer_norm_backward(x_hat, inv_std, cupy.asarray(g)),
          reference.layer_norm_backward(x_hat_ref, inv_std_ref, g), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_backward(dtype):
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 50, 4000)
    g = rng.standard_normal((4000, 64)).astype(dtype)
    close(gpu.embedding_backward(*on_gpu(g, ids), 50),
          reference.embedding_backward(g, ids, 50), dtype, scale=10)   # sums of 80 rows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_step(dtype, decoupled, amsgrad):
    rng = np.random.default_rng(5)
    p, g = (rng.standard_normal(10000).astype(dtype) for _ in range(2))
    state = [np.abs(rng.standard_normal(10000)).astype(dtype) for _ in range(3)]
    mine = list(on_gpu(p, *state))
    ref = [p.copy()] + [s.copy() for s in state]
    gpu.adam_step(mine[0], cupy.asarray(g), mine[1], mine[2], 1e-3, 0.9, 0.99, 1e-8, 3, 0.1,
                  decoupled, mine[3] if amsgrad else None)
    reference.adam_step(ref[0], g, ref[1], ref[2], 1e-3, 0.9, 0.99, 1e-8, 3, 0.1, decoupled,
                        ref[3] if amsgrad else None)
    for a, b in zip(mine, ref):
        close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_and_gru_cell_backward(dtype):
    rng = np.random.default_rng(6)
    B, H = 20, 256
    gates, rzn = rng.random((B, 4 * H)).astype(dtype), rng.random((B, 3 * H)).astype(dtype)
    tanh_c = np.tanh(rng.standard_normal((B, H))).astype(dtype)
    c_prev, dh, dc, u, h_prev = (rng.standard_normal((B, H)).astype(dtype) for _ in range(5))
    d_gpu = on_gpu(dc, np.empty((B, 4 * H), dtype), dh, np.empty((B, 3 * H), dtype),
                   np.empty((B, 3 * H), dtype))
    gpu.lstm_cell_backward(*on_gpu(gates, tanh_c, c_prev, dh), d_gpu[0], d_gpu[1])
    gpu.gru_cell_backward(*on_gpu(rzn, u, h_prev), d_gpu[2], d_gpu[3], d_gpu[4])
    d_ref = (dc.copy(), np.empty((B, 4 * H), dtype), dh.copy(), np.empty((B, 3 * H), dtype),
             np.empty((B, 3 * H), dtype))
    reference.lstm_cell_backward(gates, tanh_c, c_prev, dh, d_ref[0], d_ref[1])
    reference.gru_cell_backward(rzn, u, h_prev, d_ref[2], d_ref[3], d_ref[4])
    for a, b in zip(d_gpu, d_ref):
        close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L, S, dk, dv, offset", [
    (37, 37, 16, 16, 0), (37, 37, 16, 8, None), (20, 45, 8, 12, 25), (300, 300, 64, 64, 0),
    (1024, 1024, 64, 64, 0)])
def test_streaming_attention(dtype, L, S, dk, dv, offset):
    rng = np.random.default_rng(7)
    q, g = (rng.standard_normal((4, L, d)).astype(dtype) for d in (dk, dv))
    k, v = (rng.standard_normal((4, S, d)).astype(dtype) for d in (dk, dv))
    scale = dk ** -0.5
    out, lse = gpu.attention_forward(*on_gpu(q, k, v), scale, offset)
    out_ref, lse_ref = reference.attention_forward(q, k, v, scale, offset)
    close(out, out_ref, dtype)
    close(lse, lse_ref, dtype)
    grads = gpu.attention_backward(*on_gpu(q, k, v), out, lse, cupy.asarray(g), scale, offset)
    for a, b in zip(grads, reference.attention_backward(q, k, v, out_ref, lse_ref, g, scale,
                                                        offset)):
        close(a, b, dtype, scale=10)    # dQ: sums of up to S atomically added terms


def test_dispatch_routes_cupy_arrays_to_the_cuda_kernels():
    x = cupy.ones((2, 3), cupy.float32)
    assert kernels.kernel("softmax_forward", x) is gpu.softmax_forward
    assert kernels.kernel("gelu_forward", x) is gpu.gelu_forward     # NumPy-faster list: CPU only
    with kernels.use("reference"):
        assert kernels.kernel("softmax_forward", x) is reference.softmax_forward


def test_tensor_round_trip():
    x = tl.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and isinstance(y.data, cupy.ndarray)
    (y * y).sum().backward()
    assert x.device == "cpu" and isinstance(x.grad, np.ndarray)
    np.testing.assert_array_equal(x.grad, 2 * np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(y.to("cpu").numpy(), x.numpy())
    with pytest.raises(tl.TinyLMError, match="different devices"):
        y + x


def _train_steps(model, step_fn, steps=3):
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99)) \
        if hasattr(model, "configure_optimizers") else tl.optim.AdamW(model.parameters(), 1e-3)
    losses = []
    for _ in range(steps):
        loss = step_fn(model)
        opt.zero_grad()
        loss.backward()
        tl.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses, model.state_dict()


@pytest.mark.parametrize("block_size", [64, 512])     # 512: the streaming attention kernel
def test_gpt_training_step_on_cuda_equals_cpu(block_size):
    from tinylm.models import GPT, GPTConfig
    config = GPTConfig(block_size=block_size, vocab_size=65, n_layer=2, n_head=4, n_embd=64,
                       dropout=0.0, bias=False)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 65, (2, 4, block_size))
    results = [_train_steps(GPT(config, seed=0).to(device), lambda m: m(x, y)[1])
               for device in ("cpu", "cuda")]
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4)
    for k, v in results[0][1].items():
        np.testing.assert_allclose(results[1][1][k], v, rtol=1e-3, atol=1e-5)


def test_lstm_language_model_step_on_cuda_equals_cpu():
    from tinylm.models import RNNLM
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 200, (2, 8, 35))
    results = []
    for device in ("cpu", "cuda"):
        model = RNNLM(vocab_size=200, embed_size=64, hidden_size=64, num_layers=1, cell="lstm",
                      seed=0).to(device)
        results.append(_train_steps(model, lambda m: m(x, y)[1]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4)
    for k, v in results[0][1].items():
        np.testing.assert_allclose(results[1][1][k], v, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_word2vec_update_one_example_at_a_time_is_the_cpu_step(dtype):
    rng = np.random.default_rng(8)
    syn0, syn1 = ((0.3 * rng.standard_normal((50, 37))).astype(dtype) for _ in range(2))
    ctx_offsets = np.array([0, 1, 3, 4, 7, 8, 10], np.int64)
    ctx_ids = rng.integers(0, 50, 10).astype(np.int32)
    targets = rng.integers(0, 50, (6, 4)).astype(np.int32)
    targets[2, 3] = -1
    alphas = np.linspace(0.05, 0.01, 6).astype(dtype)
    ref0, ref1 = syn0.copy(), syn1.copy()
    word2vec_gpu.update_reference(ref0, ref1, ctx_offsets, ctx_ids, targets, alphas)
    d0, d1 = on_gpu(syn0, syn1)
    for e in range(6):
        ctx = ctx_ids[ctx_offsets[e]:ctx_offsets[e + 1]]
        word2vec_gpu.update_gpu(d0, d1, *on_gpu(np.array([0, len(ctx)], np.int64), ctx,
                                                targets[e:e + 1], alphas[e:e + 1]))
    close(d0, ref0, dtype, scale=4)
    close(d1, ref1, dtype, scale=4)


def test_word2vec_trains_on_cuda():
    from tinylm.embeddings import Word2Vec
    rng = np.random.default_rng(0)
    sentences = [[f"w{rng.integers(0, 5) * 2 + (i % 2)}" for i in range(12)] for _ in range(200)]
    model = Word2Vec(sentences, vector_size=16, window=2, min_count=1, negative=3, sample=0,
                     sg=1, epochs=5, seed=0, compute_loss=True, device="cuda")
    assert model.loss_history[-1] < 0.9 * model.loss_history[0]
    assert isinstance(model.wv.vectors, np.ndarray)

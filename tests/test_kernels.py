"""Numba kernels against the NumPy reference, and the switch between them."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm import kernels, optim
from tinylm.errors import TinyLMError
from tinylm.kernels import cpu, reference

# the bar: 1e-6 relative in float32, 1e-12 in float64 (atol on the array's scale,
# for entries near zero where a relative error means nothing)
TOL = {np.float32: 1e-6, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]


def ref(fn, *args):
    """The reference on float64 copies of the float arguments, cast back to their dtype: in
    float32 the kernel is held to the exact value, not to NumPy's own float32 rounding."""
    dtype = next(a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
    up = [a.astype(np.float64) if isinstance(a, (np.ndarray, np.floating))
          and np.asarray(a).dtype.kind == "f" else a for a in args]
    out = fn(*up)
    if isinstance(out, tuple):
        return tuple(o.astype(dtype) for o in out)
    return out.astype(dtype)


def close(a, b, dtype):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype == np.dtype(dtype)
    scale = max(float(np.abs(b).max()), 1.0)
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype] * scale)


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


def data(rng, shape, dtype, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(rng, dtype, approximate):
    x, g = data(rng, (5, 7, 11), dtype), data(rng, (5, 7, 11), dtype)
    y, saved = cpu.gelu_forward(x, approximate)
    ref_y, ref_saved = ref(reference.gelu_forward, x, approximate)
    close(y, ref_y, dtype)
    close(saved, ref_saved, dtype)
    close(cpu.gelu_backward(x, saved, g, approximate),
          ref(reference.gelu_backward, x, saved, g, approximate), dtype)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_and_log_softmax(rng, dtype, name):
    x, g = data(rng, (6, 4, 33), dtype, scale=20.0), data(rng, (6, 4, 33), dtype)
    x[0, 0, :5] = -np.inf                     # masked entries, as attention passes them
    if name == "softmax":
        y = cpu.softmax_forward(x)
        close(y, ref(reference.softmax_forward, x), dtype)
        close(cpu.softmax_backward(y, g), ref(reference.softmax_backward, y, g), dtype)
    else:
        x[0, 0, :5] = -30.0                   # log(0) = -inf has no finite comparison
        y = cpu.log_softmax_forward(x)
        close(y, ref(reference.log_softmax_forward, x), dtype)
        close(cpu.log_softmax_backward(y, g), ref(reference.log_softmax_backward, y, g), dtype)


def test_softmax_of_huge_logits_is_finite(dtype):
    x = np.array([[1e4, -1e4, 0.0], [3e4, 3e4, 3e4]], dtype=dtype)
    y = cpu.softmax_forward(x)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y[1], 1 / 3, rtol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(rng, dtype, smoothing):
    logits = data(rng, (40, 17), dtype, scale=10.0)
    target = rng.integers(0, 17, 40)
    valid = target != 3                       # some rows ignored
    loss, lse = cpu.cross_entropy_forward(logits, target, valid, smoothing)
    ref_loss, ref_lse = ref(reference.cross_entropy_forward, logits, target, valid, smoothing)
    close(loss, ref_loss, dtype)
    close(lse, ref_lse, dtype)
    for row_scale in (dtype(0.025), data(rng, (40,), dtype)):
        close(cpu.cross_entropy_backward(logits, lse, target, valid, smoothing, row_scale),
              ref(reference.cross_entropy_backward, logits, lse, target, valid, smoothing,
                                               row_scale), dtype)


def test_cross_entropy_with_a_minus_inf_logit_is_finite(dtype):
    """A masked-out class (-inf logit) has probability 0; without label smoothing the loss
    never touches the mean of the logits (0 * inf would be NaN)."""
    x = np.array([[1.0, -np.inf, 0.5], [-np.inf, 2.0, 0.0]], dtype=dtype)
    target, valid = np.array([0, 1]), np.ones(2, bool)
    loss, lse = cpu.cross_entropy_forward(x, target, valid, 0.0)
    close(loss, ref(reference.cross_entropy_forward, x, target, valid, 0.0)[0], dtype)
    assert np.isfinite(loss).all() and np.isfinite(lse).all()


def test_layer_norm(rng, dtype):
    x, g = data(rng, (30, 24), dtype) + 100, data(rng, (30, 24), dtype)   # offset: no cancel
    x_hat, inv_std = cpu.layer_norm_forward(x, 1e-5)
    ref_hat, ref_inv = ref(reference.layer_norm_forward, x, 1e-5)
    close(x_hat, ref_hat, dtype)
    close(inv_std, ref_inv, dtype)
    close(cpu.layer_norm_backward(x_hat, inv_std, g),
          ref(reference.layer_norm_backward, x_hat, inv_std, g), dtype)


def test_embedding_backward_adds_repeated_ids(rng, dtype):
    g = data(rng, (9, 5), dtype)
    ids = np.array([0, 3, 3, 7, 0, 0, 9, 3, 1])
    out = cpu.embedding_backward(g, ids, 10)
    close(out, ref(reference.embedding_backward, g, ids, 10), dtype)
    np.testing.assert_allclose(out[3], g[1] + g[2] + g[7], rtol=TOL[dtype])


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_step(rng, dtype, decoupled):
    arrays = [data(rng, (50,), dtype) for _ in range(3)]
    arrays.append(np.abs(data(rng, (50,), dtype)))            # v >= 0
    ours = [a.copy() for a in arrays]
    theirs = [a.astype(np.float64) for a in arrays]         # in place, so no ref()
    args = (1e-3, 0.9, 0.99, 1e-8, 7, 0.1, decoupled)
    cpu.adam_step(ours[0], ours[1], ours[2], ours[3], *args)
    reference.adam_step(theirs[0], theirs[1], theirs[2], theirs[3], *args)
    for a, b in zip(ours, theirs):
        close(a, b.astype(dtype), dtype)


def _in_place_pair(fn_ours, fn_ref, inputs, updated):
    """Run an in-place kernel on copies and the reference on float64 copies; compare every
    array (the ``updated`` positions are inputs it rewrites, the rest of the tail outputs)."""
    dtype = inputs[0].dtype.type
    ours = [a.copy() for a in inputs]
    theirs = [a.astype(np.float64) for a in inputs]
    fn_ours(*ours)
    fn_ref(*theirs)
    for k in updated:
        close(ours[k], theirs[k].astype(dtype), dtype)


def test_vector_math_exp_and_normal_cdf_in_float32():
    """exp32 and normal_cdf32 (vectorisable arithmetic) against the C library in float64:
    exp to 2 float32 ulp (exactly 1 at 0, 0 at -inf), Phi to 2.5e-7 absolute and 2e-6 relative where it is above 1e-30
    (the tail keeps its relative precision), exact at +-inf."""
    from numba import njit
    from tinylm.kernels import vector_math as vm

    @njit(error_model="numpy")
    def apply(f, x, out):
        for i in range(x.size):
            out[i] = f(x[i])
    assert vm.q_error() < 1e-8
    y = np.concatenate([-np.geomspace(1e-30, 86, 4000), [0.0, -np.inf, -100.0]])
    y = y.astype(np.float32)
    out = np.empty_like(y)
    apply(vm.exp32, y, out)
    exact = np.exp(y.astype(np.float64))
    assert out[-3] == 1 and out[-2] == 0 and out[-1] == 0
    np.testing.assert_allclose(out[:-3], exact[:-3], rtol=2.4e-7)
    x = np.concatenate([np.linspace(-14, 14, 8001), [np.inf, -np.inf]]).astype(np.float32)
    cdf = np.empty_like(x)
    apply(vm.normal_cdf32, x, cdf)
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x.astype(np.float64)])
    assert cdf[-2] == 1 and cdf[-1] == 0 and abs(cdf[4000] - 0.5) <= 6e-8
    assert np.max(np.abs(cdf - exact)) < 2.5e-7
    tail = exact > 1e-30
    assert np.max(np.abs(cdf[tail] - exact[tail]) / exact[tail]) < 2e-5


def test_lstm_cell_backward(rng, dtype):
    B, H = 3, 5
    gates = 1 / (1 + np.exp(-data(rng, (B, 4 * H), np.float64)))
    gates[:, 2 * H:3 * H] = np.tanh(data(rng, (B, H), np.float64))      # g is a tanh
    inputs = [gates.astype(dtype), np.tanh(data(rng, (B, H), dtype)),
              data(rng, (B, H), dtype), data(rng, (B, H), dtype), data(rng, (B, H), dtype),
              np.zeros((B, 4 * H), dtype)]
    _in_place_pair(cpu.lstm_cell_backward, reference.lstm_cell_backward, inputs, [3, 4, 5])


def test_gru_cell_backward(rng, dtype):
    B, H = 3, 5
    rzn = 1 / (1 + np.exp(-data(rng, (B, 3 * H), np.float64)))
    rzn[:, 2 * H:] = np.tanh(data(rng, (B, H), np.float64))             # n is a tanh
    inputs = [rzn.astype(dtype), data(rng, (B, H), dtype), data(rng, (B, H), dtype),
              data(rng, (B, H), dtype), np.zeros((B, 3 * H), dtype),
              np.zeros((B, 3 * H), dtype)]
    _in_place_pair(cpu.gru_cell_backward, reference.gru_cell_backward, inputs, [3, 4, 5])


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_recurrent_layers_are_the_same_with_either_kernels(rng, layer):
    x = data(rng, (7, 4, 6), np.float64)
    grads = []
    for mode in kernels.MODES:
        with kernels.use(mode):
            net = getattr(tl.nn, layer)(6, 5, num_layers=2, bidirectional=True, seed=3,
                                        dtype=np.float64)
            xt = tl.Tensor(x, requires_grad=True)
            out, _ = net(xt)
            (out * out).sum().backward()
            grads.append([xt.grad] + [p.grad for p in net.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_adam_kernel_takes_amsgrad_and_strided_arrays_through_the_reference(rng):
    """cpu.adam_step runs the reference's arithmetic where its flat views cannot: AMSGrad's
    v_max, and arrays that are not contiguous (updated in place either way)."""
    base = [data(rng, (6, 8), np.float64) for _ in range(3)] + [np.abs(data(rng, (6, 8),
                                                                            np.float64))]
    args = (1e-3, 0.9, 0.99, 1e-8, 3, 0.1, True)
    for make in (lambda a: a.copy(), lambda a: a.copy()[:, ::2]):      # contiguous, strided
        ours, theirs = [make(a) for a in base], [make(a) for a in base]
        v_max_ours, v_max_theirs = np.zeros_like(ours[3]), np.zeros_like(theirs[3])
        cpu.adam_step(*ours, *args, v_max=v_max_ours)
        reference.adam_step(*theirs, *args, v_max=v_max_theirs)
        for a, b in zip(ours + [v_max_ours], theirs + [v_max_theirs]):
            np.testing.assert_array_equal(a, b)
        ours, theirs = [make(a) for a in base], [make(a) for a in base]
        cpu.adam_step(*ours, *args)
        reference.adam_step(*theirs, *args)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_dispatch_picks_numba_for_numpy_floats_and_the_reference_otherwise():
    x32 = np.zeros(3, np.float32)
    assert kernels.kernel("layer_norm_forward", x32) is cpu.layer_norm_forward
    assert kernels.kernel("layer_norm_forward", x32.astype(np.float16)) is \
        reference.layer_norm_forward
    assert kernels.kernel("gelu_forward", x32) is cpu.gelu_forward
    with kernels.use("reference"):
        assert kernels.mode() == "reference"
        assert kernels.kernel("layer_norm_forward", x32) is reference.layer_norm_forward
    assert kernels.mode() == "numba"
    with pytest.raises(TinyLMError, match="one of"):
        kernels.set_mode("cuda")


def test_environment_variable_switches_and_rejects_unknown_values():
    code = "import tinylm.kernels as k; print(k.mode())"
    env = dict(os.environ, TINYLM_KERNELS="reference")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "reference"
    env["TINYLM_KERNELS"] = "fast"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "TINYLM_KERNELS must be one of" in out.stderr


def _gpt_step_losses(mode, steps=3):
    """Three AdamW steps of a tiny GPT under one kernel mode: losses and final weights."""
    from tinylm.models import GPT, GPTConfig
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (2, 2, 8))
    with kernels.use(mode):
        model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=8,
                              dropout=0.0), seed=0).to(np.float64)
        opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        losses = []
        for _ in range(steps):
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses, model.state_dict()


def test_a_whole_training_run_is_the_same_with_either_kernels():
    fast, fast_state = _gpt_step_losses("numba")
    slow, slow_state = _gpt_step_losses("reference")
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    for name in fast_state:
        np.testing.assert_allclose(fast_state[name], slow_state[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_ops_through_the_reference_still_pass_gradient_checks(rng):
    from tinylm.gradcheck import gradcheck
    x = tl.Tensor(rng.standard_normal((3, 5)), requires_grad=True)
    with kernels.use("reference"):
        for fn in (F.gelu, lambda t: F.softmax(t, axis=0), F.log_softmax,
                   lambda t: F.layer_norm(t, 5),
                   lambda t: F.cross_entropy(t, np.array([0, 4, 2]))):
            assert gradcheck(lambda: fn(x), [x]).passed


@pytest.mark.parametrize("causal_offset", [None, 0, 3])
@pytest.mark.parametrize("lengths", [(7, 7), (5, 150), (600, 600), (300, 700)])  # >256: tiles
def test_streaming_attention_equals_the_naive_formula(rng, dtype, causal_offset, lengths):
    L, S = lengths
    q, k = data(rng, (2, 3, L, 8), dtype, 1.0), data(rng, (2, 3, S, 8), dtype, 1.0)
    v, g = data(rng, (2, 3, S, 5), dtype), data(rng, (2, 3, L, 5), dtype)
    out, lse = cpu.attention_forward(q, k, v, 8 ** -0.5, causal_offset)
    ref_out, ref_lse = ref(reference.attention_forward, q, k, v, 8 ** -0.5, causal_offset)
    close(out, ref_out, dtype)
    close(lse, ref_lse, dtype)
    grads = cpu.attention_backward(q, k, v, out, lse, g, 8 ** -0.5, causal_offset)
    ref_grads = ref(reference.attention_backward, q, k, v, out, lse, g, 8 ** -0.5,
                    causal_offset)
    for ours, theirs in zip(grads, ref_grads):
        close(ours, theirs, dtype)

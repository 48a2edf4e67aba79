"""Numerical traps: softmax, log-softmax and cross-entropy at logits of +-1e4, float16
refused, ``tinylm.detect_anomaly()`` naming the op that first made a NaN or an infinity, and
a training run that stops on a NaN without touching its last good checkpoint."""
import re

import numpy as np
import pytest

import tinylm as tl
from tinylm import checkpoint
from tinylm import functional as F
from tinylm.models import GPT, GPTConfig
from tinylm.tensor import Tensor
from tinylm.text import random_windows
from tinylm.train import TrainConfig, Trainer

# the traps below make NumPy warn (overflow, divide by zero) on purpose
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

EXTREME = np.array([[1e4, -1e4, 0.0, 3.0],
                    [-1e4, -1e4, -1e4, -1e4],
                    [1e4, 1e4, -1e4, 1e4 - 1.0],
                    [2.0, -3.0, 0.5, 1.0]])


def log_softmax_reference(z):
    """log softmax in float64 with the max subtracted first (exact enough for any z)."""
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# --- stable at +-1e4 ------------------------------------------------------------------
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_softmax_and_log_softmax_are_exact_at_1e4(dtype, rtol):
    x = Tensor(EXTREME.astype(dtype), requires_grad=True)
    expected = log_softmax_reference(EXTREME.astype(dtype))
    out = F.log_softmax(x)
    assert out.dtype == dtype and np.isfinite(out.data).all()
    np.testing.assert_allclose(out.data, expected, rtol=rtol, atol=1e-6)
    probs = F.softmax(x)
    np.testing.assert_allclose(probs.data, np.exp(expected), rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(probs.data.sum(axis=-1), 1.0, rtol=1e-6)
    weights = np.arange(16.0).reshape(4, 4)
    (probs * Tensor(weights.astype(dtype))).sum().backward()
    p = np.exp(log_softmax_reference(EXTREME))          # d/dx sum(W softmax(x)) = p (W - p.W)
    expected_grad = p * (weights - (p * weights).sum(axis=-1, keepdims=True))
    assert np.isfinite(x.grad).all()
    np.testing.assert_allclose(x.grad, expected_grad, rtol=rtol, atol=1e-5)


# The loss is computed around the row's max, (m - x_target) + log sum e^(x - m), not as
# lse - x_target (two numbers near 1e4 whose difference float32 knows only to its spacing
# there, 2^-10): so the float32 loss is exact to its own rounding. The gradient
# e^(x - lse) reads the saved lse, a float32 near 1e4: it is as exact as that (4 spacings).
# float64 is exact to 1e-11 throughout.
@pytest.mark.parametrize("dtype, atol, grad_atol",
                         [(np.float64, 1e-11, 1e-11),
                          (np.float32, 1e-6, 4 * float(np.spacing(np.float32(1e4))))])
def test_cross_entropy_is_stable_at_1e4(dtype, atol, grad_atol):
    target = np.array([1, 0, 3, 2])
    logits = Tensor(EXTREME.astype(dtype), requires_grad=True)
    loss = F.cross_entropy(logits, target, reduction="none")
    expected = -log_softmax_reference(EXTREME)[np.arange(4), target]   # 2e4, log 4, 1.86, 1.97
    assert np.isfinite(loss.data).all()
    np.testing.assert_allclose(loss.data, expected, rtol=1e-7, atol=atol)
    loss.sum().backward()
    softmax = np.exp(log_softmax_reference(EXTREME))
    softmax[np.arange(4), target] -= 1
    np.testing.assert_allclose(logits.grad, softmax, atol=grad_atol)


@pytest.mark.parametrize("op", [F.softmax, F.log_softmax,
                                lambda x: F.cross_entropy(x, np.array([0, 1]))])
def test_float16_logits_are_refused_with_the_way_out(op):
    with pytest.raises(tl.DTypeError, match=r"float16 input is not supported .*cast it first: "
                                            r"x.astype\(np.float32\)"):
        op(Tensor(np.array([[1e4, -1e4, 0.0], [0.0, 1.0, 2.0]], dtype=np.float16)))


def test_float16_upcast_by_hand_gives_the_right_loss():
    logits = np.array([[-1e4, -1e4, -1e4]], dtype=np.float16)
    loss = F.cross_entropy(Tensor(logits).astype(np.float32), np.array([1]))
    assert loss.item() == pytest.approx(np.log(3), abs=4 * float(np.spacing(np.float32(1e4))))


# --- detect_anomaly ---------------------------------------------------------------------
def test_forward_anomaly_names_the_op_its_inputs_and_the_cause():
    x = Tensor(np.array([1.0, 0.0, 2.0]), requires_grad=True)
    with tl.detect_anomaly():
        h = x * 2.0                                      # fine
        with pytest.raises(tl.NumericalError) as info:
            F.log(h)
    message = str(info.value)
    assert re.search(r"detect_anomaly: Log.forward produced inf \(first at index \(1,\) of "
                     r"its output, shape \(3,\)\) from finite inputs \(\(3,\) float64\)", message)
    assert "log of 0" in message
    assert isinstance(info.value, tl.TinyLMError) and isinstance(info.value, FloatingPointError)


def test_backward_anomaly_names_the_op():
    x = Tensor(np.array([4.0, 0.0]), requires_grad=True)
    with tl.detect_anomaly():
        y = F.sqrt(x).sum()                              # sqrt(0) = 0 is finite ...
        with pytest.raises(tl.NumericalError, match=r"Sqrt.backward produced inf in the "
                                                    r"gradient of its input 0 \(shape \(2,\), "
                                                    r"first at index \(1,\)\)"):
            y.backward()                                 # ... its slope there is not


def test_the_first_op_is_named_not_a_later_one():
    x = Tensor(np.array([[1e200, 1.0]]), requires_grad=True)
    with tl.detect_anomaly():
        with pytest.raises(tl.NumericalError, match=r"^detect_anomaly: Mul.forward produced "
                                                    r"inf .*overflow"):
            F.softmax((x * x) - (x * x))                 # Mul overflows; Sub would make nan


def test_intended_infinities_pass_and_a_fully_masked_row_does_not():
    rng = np.random.default_rng(0)
    scores = Tensor(rng.standard_normal((3, 3)), requires_grad=True)
    causal = np.triu(np.ones((3, 3), bool), 1)
    with tl.detect_anomaly():
        probs = F.softmax(scores.masked_fill(causal, -np.inf) / 2.0)   # -inf on purpose
        (probs * Tensor(rng.standard_normal((3, 3)))).sum().backward()
        assert np.isfinite(scores.grad).all()
        with pytest.raises(tl.NumericalError, match=r"Softmax.forward produced nan .*from "
                                                    r"inputs without nan \(some infinite\)"):
            F.softmax(scores.masked_fill(np.ones((3, 3), bool), -np.inf))


def test_a_nan_in_the_data_is_reported_where_it_enters():
    w = Tensor(np.ones((2, 2)), requires_grad=True)
    batch = np.array([[1.0, np.nan]])
    with tl.detect_anomaly():
        with pytest.raises(tl.NumericalError, match=r"MatMul.forward got nan in its input 0 "
                                                    r"\(a leaf of shape \(1, 2\), at index "
                                                    r"\(0, 1\)\): it came from outside"):
            Tensor(batch) @ w


def test_a_non_finite_incoming_gradient_is_reported():
    x = Tensor(np.ones(2), requires_grad=True)
    with tl.detect_anomaly():
        y = x * 3.0
        with pytest.raises(tl.NumericalError, match=r"the gradient arriving at Mul.backward "
                                                    r"\(for its output of shape \(2,\)\) is "
                                                    r"already nan"):
            y.backward(np.array([1.0, np.nan]))


def test_anomaly_mode_is_off_outside_the_block_and_restored_after_errors():
    x = Tensor(np.array([0.0]), requires_grad=True)
    assert not tl.anomaly.is_anomaly_enabled()
    with np.errstate(divide="ignore"):
        assert F.log(x).item() == -np.inf                # off: NumPy's answer, no error
        with pytest.raises(tl.NumericalError):
            with tl.detect_anomaly():
                assert tl.anomaly.is_anomaly_enabled()
                with tl.detect_anomaly():                # nested: still on after the inner
                    pass
                assert tl.anomaly.is_anomaly_enabled()
                F.log(x)
    assert not tl.anomaly.is_anomaly_enabled()


def test_detect_anomaly_as_a_decorator_and_under_no_grad():
    @tl.detect_anomaly()
    def evaluate(x):
        with tl.no_grad():
            return F.exp(x)

    with pytest.raises(tl.NumericalError, match=r"Exp.forward produced inf .*x > 709.8"):
        evaluate(Tensor(np.array([1.0, 800.0])))


def test_a_whole_model_step_passes_under_detect_anomaly():
    model = GPT(GPTConfig(block_size=8, vocab_size=7, n_layer=1, n_head=2, n_embd=8,
                          dropout=0.1), seed=0)
    ids = np.random.default_rng(0).integers(0, 7, (2, 8))
    with tl.detect_anomaly():
        _, loss = model(ids, ids)
        loss.backward()
    assert np.isfinite(loss.item())
    assert all(np.isfinite(p.grad).all() for p in model.parameters())


# --- training stops on NaN and keeps the last good checkpoint ------------------------------
TEXT = np.array(list(b"abcabdabcabdabcabe" * 20), dtype=np.int64) - 97


get_batch = random_windows({"train": TEXT[:300], "val": TEXT[300:]}, 8, 4)   # (x, y) windows


def trainer(tmp_path, loss_fn, **kw):
    model = GPT(GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=8,
                          dropout=0.0), seed=0)
    cfg = TrainConfig(**{**dict(max_iters=10, lr=1e-2, min_lr=1e-3, warmup_iters=0,
                                eval_interval=100, eval_iters=1, checkpoint_interval=1,
                                seed=1, progress=False, out_dir=str(tmp_path / "run")), **kw})
    return Trainer(model, model.configure_optimizers(0.0, 1e-2, (0.9, 0.99)), get_batch, cfg,
                   loss_fn=loss_fn)


def infinite_slope_at(step):
    """A loss function whose value stays finite but whose gradient is inf from ``step`` on:
    sqrt(s - s) = 0 for a sum s of weights, and sqrt has slope 1/(2 sqrt 0) = inf there."""
    calls = {"n": 0}

    def loss_fn(model, x, y):
        calls["n"] += 1
        loss = model(x, y)[1]
        if calls["n"] > step:
            s = model.lm_head.weight.sum()
            loss = loss + F.sqrt(s - s.detach())
        return loss
    return loss_fn


def assert_good_checkpoint(tmp_path, iteration):
    state, meta = checkpoint.load(tmp_path / "run" / "ckpt.safetensors")
    assert meta["iter"] == iteration
    assert all(np.isfinite(v).all() for v in state.values())


def test_a_nan_loss_stops_training_and_names_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def loss_fn(model, x, y):
        calls["n"] += 1                       # one evaluation call first (eval_iters=1, 2 splits)
        loss = model(x, y)[1]
        return loss * np.nan if calls["n"] > 2 + 4 else loss
    run = trainer(tmp_path, loss_fn)
    with pytest.raises(tl.NumericalError, match=r"train: the loss is nan at iteration 4 .*The "
                                                r"last checkpoint, .*ckpt.safetensors "
                                                r"\(iteration 4\), is intact"):
        run.fit()
    assert_good_checkpoint(tmp_path, 4)


def test_an_infinite_gradient_stops_before_the_weights_change(tmp_path):
    run = trainer(tmp_path, infinite_slope_at(2 + 3), grad_clip=1.0)
    with pytest.raises(tl.NumericalError, match=r"train: the gradient norm is (inf|nan) at "
                                                r"iteration 3 .*the weights were not updated"):
        run.fit()
    assert all(np.isfinite(p.data).all() for p in run.model.parameters())
    assert_good_checkpoint(tmp_path, 3)


def test_weights_that_turned_nan_never_overwrite_the_checkpoint(tmp_path):
    run = trainer(tmp_path, infinite_slope_at(2 + 3), grad_clip=0)   # no norm to look at
    # lm_head.weight is tied to the token embedding, listed under its first name
    with pytest.raises(tl.NumericalError, match=r"train: the weights of transformer.wte.weight "
                                                r"are not finite after iteration 4; the "
                                                r"checkpoint was not overwritten"):
        run.fit()
    assert not np.isfinite(run.model.lm_head.weight.data).all()
    assert_good_checkpoint(tmp_path, 3)
    resumed = trainer(tmp_path, None, lr=1e-3, min_lr=1e-4)            # resume, lower lr
    resumed.fit(resume=True)
    assert resumed.iter == 10 and all(np.isfinite(p.data).all()
                                      for p in resumed.model.parameters())

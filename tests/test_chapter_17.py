"""Chapter 17 (scaling): it runs end to end with ``--quick``, and its tools (the data split,
the deterministic validation loss, the FLOP count of a training step, tracemalloc, scoring a
changed model and putting it back, model bytes) are tested directly (tools loaded with
``chapter_tools.load_definitions``). The formulas themselves are tested in test_scaling.py
and test_compress.py."""
import numpy as np
import pytest

from tinylm import compress, scaling
from tinylm.errors import TinyLMError
from tinylm.models import GPT

from chapter_tools import assert_chapter_passes, load_definitions

pytestmark = pytest.mark.ch17


@pytest.fixture(scope="module")
def ch17():
    return load_definitions("17_scaling.py")


@pytest.fixture(scope="module")
def data(ch17):
    return ch17.load_ids(max_chars=30_000)


def test_chapter_17_runs(tmp_path):
    out = assert_chapter_passes("17_scaling.py", tmp_path,
                                ["17_memory.png", "17_scaling.png", "17_compression.png"])
    assert "gpt2          12   768      124,439,808           124,439,808" in out
    assert "counted forward FLOPs = the formula x B x T, exactly" in out
    assert "L(N) = " in out and "N^-" in out
    assert "sparsity   global     per layer   random" in out


def test_load_ids_splits_in_order(ch17, data):
    tok, train, val = data
    assert len(train) == 27_000 and len(val) == 3_000
    assert tok.decode(train[:20].tolist()) == ch17.default_text()[:20]
    assert train.max() < tok.vocab_size and val.max() < tok.vocab_size
    with pytest.raises(TinyLMError, match="needs at least"):
        ch17.load_ids(max_chars=100)


def test_val_loss_is_deterministic_and_keeps_the_mode(ch17, data):
    tok, _, val = data
    model = GPT(ch17.make_config((1, 16, 2), tok.vocab_size), seed=0)
    model.train()
    a = ch17.val_loss(model, val, max_windows=64)
    assert model.training
    assert a == ch17.val_loss(model, val, max_windows=64)
    assert abs(a - np.log(tok.vocab_size)) < 0.5            # untrained: about log V


def test_fixed_validation_and_train_model(ch17, data):
    tok, train, val = data
    get_batch = ch17.fixed_validation(train, val, block=16, batch=8, val_windows=32)
    x1, y1 = get_batch("val", np.random.default_rng(0))
    x2, _ = get_batch("val", np.random.default_rng(1))
    assert x1.shape == (32, 16) and np.array_equal(x1, x2)               # always the same
    np.testing.assert_array_equal(x1.ravel(), val[:32 * 16])
    np.testing.assert_array_equal(y1.ravel(), val[1:32 * 16 + 1])
    xa, _ = get_batch("train", np.random.default_rng(0))
    xb, _ = get_batch("train", np.random.default_rng(1))
    assert xa.shape == (8, 16) and not np.array_equal(xa, xb)            # random windows
    with pytest.raises(TinyLMError, match="need"):
        ch17.fixed_validation(train, val[:100], block=16, val_windows=32)
    cfg = ch17.make_config((1, 16, 2), tok.vocab_size, block=16)
    model, history, seconds = ch17.train_model(cfg, get_batch, 40, 1e-2, evals=2)
    evals = [e["val_loss"] for e in history["eval"]]
    assert [e["iter"] for e in history["eval"]] == [0, 20, 40] and seconds > 0
    assert evals[-1] < evals[0] - 0.5                                    # it learns
    assert evals[-1] == pytest.approx(ch17.val_loss(model, val, 16, max_windows=32), abs=1e-5)


def test_counted_training_flops_is_three_forwards(ch17, data):
    tok, train, _ = data
    cfg = ch17.make_config((2, 32, 4), tok.vocab_size)
    model = GPT(cfg, seed=0)
    x, y = train[:4 * 32].reshape(4, 32), train[1:4 * 32 + 1].reshape(4, 32)
    fwd, bwd = ch17.counted_training_flops(model, x, y)
    assert fwd == scaling.gpt_forward_flops(cfg)["total"] * 4 * 32 and bwd == 2 * fwd


def test_with_weights_changed_scores_then_restores(ch17, data):
    tok, _, val = data
    model = GPT(ch17.make_config((1, 16, 2), tok.vocab_size), seed=0)
    weights = [w for _, w in compress.prunable_weights(model)]
    before = [w.data.copy() for w in weights]
    zeroed = ch17.with_weights_changed(
        weights, lambda: compress.apply_masks_(weights, compress.magnitude_masks(weights, 0.5)),
        lambda: sum(int((w.data == 0).sum()) for w in weights))
    assert zeroed == round(0.5 * sum(w.size for w in weights))
    assert all(np.array_equal(w.data, b) for w, b in zip(weights, before))
    with pytest.raises(RuntimeError):                       # restored even when scoring fails
        ch17.with_weights_changed(weights, lambda: compress.fake_quantize_(weights, 2),
                                  lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert all(np.array_equal(w.data, b) for w, b in zip(weights, before))


def test_model_bytes(ch17, data):
    tok, _, _ = data
    model = GPT(ch17.make_config((1, 16, 2), tok.vocab_size), seed=0)
    weights = [w for _, w in compress.prunable_weights(model)]
    n_w = sum(w.size for w in weights)
    assert ch17.model_bytes(model) == 4 * model.num_parameters()
    assert ch17.model_bytes(model, weights, n_w) == 4 * model.num_parameters() - 3 * n_w
    assert ch17.fmt_bytes(1_500_000) == "1.50 MB" and ch17.fmt_bytes(12) == "12 B"

"""Bad input at the public entry points raises a ``tinylm.TinyLMError`` subclass whose
message says what was expected and what came."""
import re

import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm import nn
from tinylm.backend import to_device
from tinylm.tensor import Tensor


def ones(*shape, dtype=np.float64):
    return Tensor(np.ones(shape, dtype))


def test_error_hierarchy():
    for cls, builtin in [(tl.ShapeError, ValueError), (tl.DTypeError, TypeError),
                         (tl.IndexRangeError, IndexError), (tl.GradError, RuntimeError)]:
        assert issubclass(cls, tl.TinyLMError) and issubclass(cls, builtin)
    assert issubclass(tl.TinyLMError, Exception)


# --- tensor ops ----------------------------------------------------------------------
def test_matmul_inner_mismatch():
    with pytest.raises(tl.ShapeError,
                       match=re.escape("matmul: (3, 4) @ (5, 2): inner sizes 4 and 5 differ")):
        ones(3, 4) @ ones(5, 2)
    with pytest.raises(tl.ShapeError, match=re.escape("(4,) @ (3,): inner sizes 4 and 3")):
        ones(4) @ ones(3)
    with pytest.raises(tl.ShapeError, match=re.escape("(2, 3) @ (4,): inner sizes 3 and 4")):
        ones(2, 3) @ ones(4)
    with pytest.raises(tl.ShapeError, match=re.escape("(3, 2) @ (3, 4)")):
        np.ones((3, 4)) @ ones(4, 2) @ ones(3, 4)        # the reflected path checks too


def test_matmul_scalar_and_batch_mismatch():
    with pytest.raises(tl.ShapeError, match=r"at least 1 axis, got \(3, 4\) @ \(\)"):
        ones(3, 4) @ Tensor(np.float64(2))
    with pytest.raises(tl.ShapeError,
                       match=re.escape("matmul: (2, 3, 4) @ (5, 4, 2): batch axes (2,) and "
                                       "(5,) do not broadcast")):
        ones(2, 3, 4) @ ones(5, 4, 2)


def test_reshape_and_transpose():
    with pytest.raises(tl.ShapeError,
                       match=re.escape("reshape: cannot reshape (2, 3) (6 elements) into (4, 2)")):
        ones(2, 3).reshape(4, 2)
    with pytest.raises(tl.ShapeError, match=r"axes \(0, 0\) are not a permutation of the 2 axes"):
        ones(2, 3).permute(0, 0)
    with pytest.raises(tl.ShapeError, match=r"axes \(0, 1, 2\) .* shape \(2, 3\)"):
        ones(2, 3).permute(0, 1, 2)


def test_tensor_dtype_and_backward_errors():
    with pytest.raises(tl.DTypeError, match="floating-point.*got dtype int"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(tl.GradError, match=r"shape \(3,\)"):
        (Tensor(np.ones(3), requires_grad=True) * 2).backward()
    with pytest.raises(tl.ShapeError, match=r"grad has shape \(2,\), expected .* \(3,\)"):
        (Tensor(np.ones(3), requires_grad=True) * 2).backward(np.ones(2))


# --- layers as functions -------------------------------------------------------------
def test_linear_feature_mismatch():
    msg = "linear: input has 4 features (shape (2, 4)), weight expects 3 (weight shape (5, 3))"
    with pytest.raises(tl.ShapeError, match=re.escape(msg)):
        F.linear(ones(2, 4), ones(5, 3))
    with pytest.raises(tl.ShapeError, match=re.escape(msg)):
        nn.Linear(3, 5, seed=0)(ones(2, 4, dtype=np.float32))


def test_embedding_ids():
    w = ones(10, 3)
    with pytest.raises(tl.DTypeError, match="embedding: each token id must be an integer, "
                                            "got dtype float64"):
        F.embedding(np.array([1.0, 2.0]), w)
    with pytest.raises(tl.IndexRangeError,
                       match=re.escape("embedding: token id 10 is out of range [0, 10)")):
        F.embedding(np.array([1, 10]), w)
    with pytest.raises(tl.IndexRangeError, match=re.escape("token id -1 is out of range")):
        F.embedding(np.array([-1, 2]), w)
    with pytest.raises(tl.IndexRangeError, match=re.escape("token id 5 is out of range [0, 5)")):
        nn.Embedding(5, 3, seed=0)(np.array([[0, 5]]))
    with pytest.raises(tl.ShapeError, match=r"weight must be 2-D .*got \(10,\)"):
        F.embedding(np.array([1]), ones(10))
    with pytest.raises(tl.IndexRangeError, match="padding_idx 10 is out of range for 10"):
        F.embedding(np.array([1]), w, padding_idx=10)


def test_layer_norm_shape_mismatch():
    with pytest.raises(tl.ShapeError, match=re.escape(
            "layer_norm: input shape (2, 5) does not end with normalized_shape (4,)")):
        F.layer_norm(ones(2, 5), 4)
    with pytest.raises(tl.ShapeError, match=re.escape("does not end with normalized_shape (2, 5)")):
        nn.LayerNorm((2, 5))(ones(5, 2, dtype=np.float32))
    with pytest.raises(tl.ShapeError, match=re.escape(
            "layer_norm: weight has shape (4,), expected normalized_shape (5,)")):
        F.layer_norm(ones(2, 5), 5, weight=ones(4))
    with pytest.raises(tl.ShapeError, match=re.escape("bias has shape (1, 5)")):
        F.layer_norm(ones(2, 5), 5, bias=ones(1, 5))


def test_dropout_errors():
    with pytest.raises(tl.TinyLMError, match="dropout: pass generator="):
        F.dropout(ones(3), 0.5)
    with pytest.raises(tl.TinyLMError, match=r"p must be in \[0, 1\], got 1.5"):
        F.dropout(ones(3), 1.5, generator=0)
    with pytest.raises(tl.TinyLMError, match=r"Dropout: p must be in \[0, 1\], got -0.1"):
        nn.Dropout(-0.1)


def test_concatenate_and_stack_mismatches():
    with pytest.raises(tl.ShapeError, match=re.escape(
            "concatenate: shapes [(2, 3), (3, 2)] differ outside axis 0")):
        F.concatenate([ones(2, 3), ones(3, 2)], axis=0)
    with pytest.raises(tl.ShapeError, match=re.escape("shapes [(2, 3), (3,)] differ")):
        F.concatenate([ones(2, 3), ones(3)], axis=1)
    with pytest.raises(tl.ShapeError, match="needs at least one tensor"):
        F.concatenate([])
    with pytest.raises(tl.ShapeError, match=re.escape(
            "stack: all shapes must be equal, got [(2, 3), (3, 2)]")):
        F.stack([ones(2, 3), ones(3, 2)])
    with pytest.raises(tl.ShapeError, match="needs at least one tensor"):
        tl.stack([])


def test_split_errors():
    with pytest.raises(tl.ShapeError, match="axis -1 of size 5 cannot be split into 2 equal"):
        F.split(ones(2, 5), 2)
    with pytest.raises(tl.ShapeError, match=re.escape("sizes [2, 2] add up to 4, but axis 0 "
                                                      "has size 5")):
        F.split(ones(5, 2), [2, 2], axis=0)


def test_masked_fill_and_where_need_bool():
    with pytest.raises(tl.DTypeError, match="masked_fill: the condition must be a boolean "
                                            "array, got dtype int64"):
        F.masked_fill(ones(3), np.array([1, 0, 1]), 0.0)
    with pytest.raises(tl.DTypeError, match="where: .*boolean.*float64"):
        F.where(np.array([1.0, 0.0, 1.0]), ones(3), 0.0)
    with pytest.raises(tl.DTypeError, match="masked_fill"):
        ones(3).masked_fill(Tensor(np.array([1.0, 0.0, 1.0])), 0.0)


def test_gelu_approximate():
    with pytest.raises(tl.TinyLMError, match="approximate must be 'none' or 'tanh', got 'fast'"):
        nn.GELU("fast")(ones(2))


# --- losses --------------------------------------------------------------------------
@pytest.mark.ch02
def test_cross_entropy_errors():
    with pytest.raises(tl.ShapeError, match=re.escape(
            "cross_entropy: logits (4, 5) need a target of shape (4,), got (3,)")):
        F.cross_entropy(ones(4, 5), np.zeros(3, int))
    with pytest.raises(tl.ShapeError, match=re.escape("need a target of shape (2, 3), got (6,)")):
        F.cross_entropy(ones(2, 3, 5), np.zeros(6, int))
    with pytest.raises(tl.IndexRangeError, match=re.escape(
            "cross_entropy: target class 5 is out of range [0, 5)")):
        F.cross_entropy(ones(4, 5), np.array([0, 1, 5, 2]))
    with pytest.raises(tl.IndexRangeError, match="target class -3 is out of range"):
        F.cross_entropy(ones(4, 5), np.array([0, 1, -3, 2]))
    with pytest.raises(tl.DTypeError, match="each target class must be an integer, got dtype "
                                            "float64"):
        F.cross_entropy(ones(4, 5), np.array([0.0, 1, 2, 2]))
    with pytest.raises(tl.ShapeError, match="class axis, got a scalar"):
        F.cross_entropy(Tensor(np.float64(1.0)), np.array(1))


@pytest.mark.ch02
def test_cross_entropy_all_ignored_mean():
    with pytest.raises(tl.TinyLMError, match=r"no targets to average over \(empty, or every one "
                                             r"equals ignore_index=-100\); the mean is undefined"):
        F.cross_entropy(ones(2, 5), np.array([-100, -100]))
    with pytest.raises(tl.TinyLMError, match="no targets to average over"):
        F.cross_entropy(np.ones((0, 5)), np.zeros(0, dtype=int))
    with pytest.raises(tl.TinyLMError, match="ignore_index=3"):
        F.cross_entropy(ones(2, 5), np.array([3, 3]), ignore_index=3)


@pytest.mark.ch02
def test_cross_entropy_bad_options():
    with pytest.raises(tl.TinyLMError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(ones(2, 5), np.array([1, 1]), label_smoothing=1.5)
    with pytest.raises(tl.TinyLMError, match="reduction must be one of .*got 'max'"):
        F.cross_entropy(ones(2, 5), np.array([1, 1]), reduction="max")


@pytest.mark.ch02
def test_bce_probabilities_outside_0_1():
    with pytest.raises(tl.TinyLMError, match=re.escape(
            "binary_cross_entropy: input must be probabilities in [0, 1], got values in "
            "[-0.5, 1.2] (for logits use binary_cross_entropy_with_logits)")):
        F.binary_cross_entropy(Tensor(np.array([-0.5, 1.2])), np.array([0.0, 1.0]))


@pytest.mark.ch02
@pytest.mark.parametrize("loss", [F.mse_loss, F.binary_cross_entropy,
                                  F.binary_cross_entropy_with_logits])
def test_loss_shape_mismatch(loss):
    with pytest.raises(tl.ShapeError, match=re.escape(
            f"{loss.__name__}: input shape (3, 1) and target shape (3,) differ")):
        loss(Tensor(np.full((3, 1), 0.5)), Tensor(np.zeros(3)))


@pytest.mark.ch02
@pytest.mark.parametrize("loss", [F.mse_loss, F.binary_cross_entropy,
                                  F.binary_cross_entropy_with_logits])
def test_loss_bad_reduction(loss):
    with pytest.raises(tl.TinyLMError, match=f"{loss.__name__}: reduction must be one of"):
        loss(Tensor(np.full(3, 0.5)), Tensor(np.zeros(3)), reduction="avg")


# --- layers and modules --------------------------------------------------------------
def test_embedding_bad_padding_idx():
    with pytest.raises(tl.TinyLMError, match="Embedding: padding_idx 5 is out of range for 5 "
                                             "embeddings"):
        nn.Embedding(5, 3, padding_idx=5)
    with pytest.raises(tl.TinyLMError, match="padding_idx -6"):
        nn.Embedding(5, 3, padding_idx=-6)


@pytest.mark.parametrize("args, message", [
    ((0, 3), "in_features must be a positive integer, got 0"),
    ((3, -2), "out_features must be a positive integer, got -2"),
    ((3, 2.5), "out_features must be a positive integer, got 2.5"),
])
def test_linear_non_positive_sizes(args, message):
    with pytest.raises(tl.TinyLMError, match=re.escape(message)):
        nn.Linear(*args)


def test_embedding_non_positive_sizes():
    with pytest.raises(tl.TinyLMError, match="num_embeddings must be a positive integer, got 0"):
        nn.Embedding(0, 3)
    with pytest.raises(tl.TinyLMError, match="embedding_dim must be a positive integer"):
        nn.Embedding(3, -1)


def test_unknown_device():
    with pytest.raises(tl.TinyLMError, match="unknown device 'tpu': expected 'cpu' or 'cuda'"):
        to_device(np.ones(2), "tpu")


# --- NumPy's own errors are turned into tinylm errors at the op boundary ----------------
@pytest.mark.parametrize("make, message", [
    (lambda: ones(3) + ones(4), "add: inputs of shape (3,), (4,): operands could not be broadcast"),
    (lambda: ones(2, 3) * ones(3, 2), "mul: inputs of shape (2, 3), (3, 2)"),
    (lambda: F.where(np.ones(3, bool), ones(3), ones(2)), "where: inputs of shape (3,), (2,)"),
    (lambda: ones(3).sum(axis=2), "sum: inputs of shape (3,): axis 2 is out of bounds"),
    (lambda: F.softmax(ones(3), axis=1), "softmax: inputs of shape (3,): axis 1 is out of bounds"),
])
def test_numpy_value_errors_become_shape_errors(make, message):
    with pytest.raises(tl.ShapeError, match=re.escape(message)):
        make()


def test_bce_rejects_nan_probabilities():
    with pytest.raises(tl.TinyLMError, match=r"probabilities in \[0, 1\], got values in \[nan"):
        F.binary_cross_entropy(np.array([0.5, np.nan]), np.array([1.0, 0.0]))


def test_embedding_bad_padding_idx_is_an_index_range_error():
    with pytest.raises(tl.IndexRangeError):
        nn.Embedding(5, 3, padding_idx=5)


def test_linear_with_a_1d_weight():
    with pytest.raises(tl.ShapeError, match=r"linear: weight must be 2-D .* got shape \(4,\)"):
        F.linear(ones(2, 4), ones(4))

"""One table of bad inputs driven through every public entry point.

Each row is ``(id, make, expected exception type, regex)``: ``make(tmp)`` feeds one bad
input to one entry point (tensor ops, layers, tokenizers, Vocab, data loaders, word2vec and
GloVe, models, optimisers, checkpoints, the Trainer, the command line, a chapter's options)
and must raise that tinylm exception type, with a message that names the function, says
what was expected and what came (the regex checks the name and the offending value).

Bad input that used to slip through and was mended for this table: float16 logits (softmax,
log-softmax and cross-entropy came back silently wrong), a negative layer-norm eps (NaN), a
non-numeric ``p`` for dropout, ragged lists for ``Tensor``, a bad dtype for ``astype``,
``item()`` of many elements, strings in ``load_state_dict``, RMSprop's alpha > 1 (NaN), a
non-callable ``LambdaLR``, a NaN ``ns_exponent`` for word2vec, a negative ``max_new_tokens``
for the models' ``generate``, truncated or inconsistent safetensors headers (they loaded as
empty, or crashed with a TypeError), ``checkpoint_interval=0`` and a negative ``grad_clip``
for the Trainer, a Trainer given no model or a ``get_batch`` that returns no pair, and
``train --resume`` without a checkpoint (its message named another option). The fuzz test
(test_fuzz_ops.py) found three more: a repeated reduction axis and ``bool - bool`` (raw NumPy
errors) and ``max(axis=0)`` of a 0-d tensor (a ZeroDivisionError).
"""
import contextlib
import functools
import io
import json
import re

import numpy as np
import pytest

import tinylm as tl
from tinylm import checkpoint, metrics, optim
from tinylm import datasets as D
from tinylm import functional as F
from tinylm import generate as G
from tinylm import nn
from tinylm.chapter import Chapter
from tinylm.cli import build_parser
from tinylm.cli.common import UsageError
from tinylm.embeddings import GloVe, KeyedVectors, VocabularyError, Word2Vec
from tinylm.errors import (DTypeError, GradError, IndexRangeError, NumericalError, ShapeError,
                           TinyLMError)
from tinylm.backend import DeviceError
from tinylm.models import (GPT, RNNLM, GPTConfig, LSTMClassifier, Seq2SeqTransformer,
                           TransformerClassifier)
from tinylm.tensor import Tensor
from tinylm.text import (BPETokenizer, CharTokenizer, LMBatches, Vocab, WordTokenizer, clean,
                         lm_blocks, load_text, load_tokenizer, pad_sequences, random_windows,
                         train_val_test_split, bucket_batches)
from tinylm.train import Trainer, TrainConfig


class ScriptExit(Exception):
    """A chapter script ended with a usage error: its exit status and what it printed.
    (A chapter is a script: argparse prints one usage line and exits with status 2.)"""


# --- small helpers the rows share ----------------------------------------------------------
def ones(*shape, dtype=np.float64):
    return Tensor(np.ones(shape, dtype))


def f32(*shape):
    return ones(*shape, dtype=np.float32)


def write(tmp, name, data):
    path = tmp / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


@functools.cache
def gpt():
    return GPT(GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=8), seed=0)


@functools.cache
def linear():
    return nn.Linear(3, 2, seed=0)


@functools.cache
def vocab():
    return Vocab.build([["a", "b", "a"]])


@functools.cache
def char_tokenizer():
    return CharTokenizer.train(["abc"])


@functools.cache
def keyed_vectors():
    return KeyedVectors(["a", "b", "c"], np.eye(3, dtype=np.float32))


def sgd(**kw):
    return optim.SGD(linear().parameters(), **{"lr": 0.1, **kw})


def cli(*argv):
    """A command as ``python -m tinylm`` runs it, without the outer handler that turns the
    error into its one printed line (``main`` prints ``tinylm: error: <message>``)."""
    args = build_parser().parse_args([str(a) for a in argv])
    return args.handler(args)


def chapter_options(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            Chapter(3, "options", argv=list(argv))
        except SystemExit as exc:
            raise ScriptExit(f"exit status {exc.code}: {err.getvalue()}") from None


def safetensors_bytes(header, data=b""):
    blob = json.dumps(header).encode()
    return len(blob).to_bytes(8, "little") + blob + data


def tiny_trainer(get_batch=None, loss_fn=None, **config):
    model = gpt()
    cfg = TrainConfig(max_iters=2, eval_interval=10, eval_iters=1, warmup_iters=0,
                      progress=False, **config)
    batch = get_batch or (lambda split, rng: (np.zeros((2, 4), int), np.zeros((2, 4), int)))
    return Trainer(model, optim.SGD(model.parameters(), lr=0.1), batch, cfg, loss_fn=loss_fn)


def saved_checkpoint(tmp, edit):
    """A good checkpoint of a Linear layer, its bytes changed by ``edit``."""
    path = tmp / "ckpt.safetensors"
    checkpoint.save(path, linear().state_dict(), {"iter": 3})
    path.write_bytes(edit(path.read_bytes()))
    return path


def flip_last_byte(raw):
    return raw[:-1] + bytes([raw[-1] ^ 0x01])


# --- the table -----------------------------------------------------------------------------
ROWS = [
    # tensors and the engine
    ("tensor-strings", lambda t: Tensor(np.array(["a"])), DTypeError,
     r"Tensor: data must be numbers .*dtype <U1"),
    ("tensor-objects", lambda t: Tensor([object()]), DTypeError, r"Tensor: .*dtype object"),
    ("tensor-ragged", lambda t: Tensor([[1, 2], [3]]), ShapeError,
     r"Tensor: expected numbers in a rectangular array .*got list"),
    ("tensor-int-requires-grad", lambda t: Tensor(np.arange(3), requires_grad=True), DTypeError,
     r"Tensor: only floating-point tensors can require gradients, got dtype int"),
    ("tensor-astype", lambda t: ones(2).astype("notadtype"), DTypeError,
     r"astype: expected a NumPy dtype .*got 'notadtype'"),
    ("tensor-item", lambda t: ones(3).item(), ShapeError,
     r"item: only a one-element tensor .*got shape \(3,\)"),
    ("add-broadcast", lambda t: ones(3) + ones(4), ShapeError,
     r"add: inputs of shape \(3,\), \(4,\): operands could not be broadcast"),
    ("mul-broadcast", lambda t: ones(2, 3) * ones(3, 2), ShapeError,
     r"mul: inputs of shape \(2, 3\), \(3, 2\)"),
    ("pow-broadcast", lambda t: ones(2) ** ones(3), ShapeError,
     r"pow: inputs of shape \(2,\), \(3,\)"),
    ("matmul-inner", lambda t: ones(3, 4) @ ones(5, 2), ShapeError,
     r"matmul: \(3, 4\) @ \(5, 2\): inner sizes 4 and 5 differ"),
    ("matmul-scalar", lambda t: ones(3, 4) @ Tensor(np.float64(2)), ShapeError,
     r"matmul: operands must have at least 1 axis, got \(3, 4\) @ \(\)"),
    ("matmul-batch", lambda t: ones(2, 3, 4) @ ones(5, 4, 2), ShapeError,
     r"matmul: .*batch axes \(2,\) and \(5,\) do not broadcast"),
    ("reshape", lambda t: ones(2, 3).reshape(4, 2), ShapeError,
     r"reshape: cannot reshape \(2, 3\) \(6 elements\) into \(4, 2\)"),
    ("permute", lambda t: ones(2, 3).permute(0, 0), ShapeError,
     r"permute: axes \(0, 0\) are not a permutation of the 2 axes"),
    ("transpose", lambda t: ones(2, 3).transpose(0, 4), ShapeError,
     r"transpose: axes 0 and 4 do not both exist in a tensor of shape \(2, 3\)"),
    ("sum-axis", lambda t: ones(2).sum(axis=3), ShapeError,
     r"sum: inputs of shape \(2,\): axis 3 is out of bounds"),
    ("mean-axis", lambda t: ones(2, 3).mean(axis=(0, 5)), ShapeError,
     r"mean: inputs of shape \(2, 3\): axis 5 is out of bounds"),
    ("sum-repeated-axis", lambda t: ones(2, 3).sum(axis=(0, -2)), ShapeError,
     r"sum: axis \(0, -2\) names an axis twice \(input of 2 axes\)"),
    ("sub-booleans", lambda t: Tensor(np.ones(2, bool)) - Tensor(np.ones(2, bool)), DTypeError,
     r"sub: inputs \(2,\) bool, \(2,\) bool: numpy boolean subtract"),
    ("mean-empty", lambda t: Tensor(np.zeros(0)).mean(), ShapeError,
     r"mean: no elements to average over \(shape \(0,\)"),
    ("max-empty", lambda t: Tensor(np.zeros(0)).max(), ShapeError,
     r"max: cannot reduce an empty array of shape \(0,\)"),
    ("getitem-range", lambda t: ones(3)[5], IndexRangeError,
     r"getitem: inputs of shape \(3,\): index 5 is out of bounds"),
    ("getitem-float", lambda t: ones(3)[1.5], IndexRangeError,
     r"getitem: inputs of shape \(3,\): only integers"),
    ("backward-no-grad", lambda t: ones(2).sum().backward(), GradError,
     r"backward: this tensor does not require grad"),
    ("backward-not-scalar", lambda t: (Tensor(np.ones(3), requires_grad=True) * 2).backward(),
     GradError, r"backward: output has shape \(3,\); pass grad="),
    ("backward-grad-shape",
     lambda t: (Tensor(np.ones(3), requires_grad=True) * 2).backward(np.ones(4)), ShapeError,
     r"backward: grad has shape \(4,\), expected the output's shape \(3,\)"),
    ("grad-unused", lambda t: tl.grad((Tensor(np.ones(2), requires_grad=True) * 2).sum(),
                                      Tensor(np.ones(2), requires_grad=True)), GradError,
     r"grad: an input of shape \(2,\) was not used"),
    ("to-device", lambda t: ones(2).to("tpu"), DeviceError,
     r"Tensor.to: expected a device \('cpu' or 'cuda'\) or a dtype, got 'tpu'"),

    # functional ops and losses
    ("softmax-float16", lambda t: F.softmax(ones(2, 3, dtype=np.float16)), DTypeError,
     r"softmax: float16 input is not supported .*got shape \(2, 3\) float16"),
    ("log-softmax-float16", lambda t: F.log_softmax(ones(2, 3, dtype=np.float16)), DTypeError,
     r"log_softmax: float16 input is not supported"),
    ("cross-entropy-float16",
     lambda t: F.cross_entropy(ones(2, 3, dtype=np.float16), np.array([0, 1])), DTypeError,
     r"cross_entropy: float16 input is not supported .*astype\(np.float32\)"),
    ("softmax-axis", lambda t: F.softmax(ones(3), axis=1), ShapeError,
     r"softmax: inputs of shape \(3,\): axis 1 is out of bounds"),
    ("softmax-scalar", lambda t: F.softmax(Tensor(np.float64(1.0))), ShapeError,
     r"softmax: inputs of shape \(\): axis -1 is out of bounds"),
    ("cross-entropy-target-shape", lambda t: F.cross_entropy(ones(4, 5), np.zeros(3, int)),
     ShapeError, r"cross_entropy: logits \(4, 5\) need a target of shape \(4,\), got \(3,\)"),
    ("cross-entropy-class-range", lambda t: F.cross_entropy(ones(4, 5), np.array([0, 1, 5, 2])),
     IndexRangeError, r"cross_entropy: target class 5 is out of range \[0, 5\)"),
    ("cross-entropy-float-target", lambda t: F.cross_entropy(ones(2, 5), np.array([0.0, 1.0])),
     DTypeError, r"cross_entropy: each target class must be an integer, got dtype float64"),
    ("cross-entropy-all-ignored", lambda t: F.cross_entropy(ones(2, 3), np.array([-100, -100])),
     TinyLMError, r"cross_entropy: no targets to average over"),
    ("cross-entropy-smoothing",
     lambda t: F.cross_entropy(ones(2, 5), np.array([1, 1]), label_smoothing=1.5), TinyLMError,
     r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"),
    ("cross-entropy-reduction",
     lambda t: F.cross_entropy(ones(2, 5), np.array([1, 1]), reduction="max"), TinyLMError,
     r"cross_entropy: reduction must be one of .*got 'max'"),
    ("mse-shapes", lambda t: F.mse_loss(ones(3), ones(4)), ShapeError,
     r"mse_loss: input shape \(3,\) and target shape \(4,\) differ"),
    ("bce-probabilities",
     lambda t: F.binary_cross_entropy(Tensor(np.array([-0.5, 1.2])), np.array([0.0, 1.0])),
     TinyLMError, r"binary_cross_entropy: input must be probabilities in \[0, 1\], got values "
                  r"in \[-0.5, 1.2\]"),
    ("layer-norm-shape", lambda t: F.layer_norm(ones(2, 5), 4), ShapeError,
     r"layer_norm: input shape \(2, 5\) does not end with normalized_shape \(4,\)"),
    ("layer-norm-eps", lambda t: F.layer_norm(ones(2, 3), 3, eps=-1.0), TinyLMError,
     r"layer_norm: eps must be a finite number >= 0, got -1.0"),
    ("dropout-p", lambda t: F.dropout(ones(3), 1.5, generator=0), TinyLMError,
     r"dropout: p must be in \[0, 1\], got 1.5"),
    ("dropout-p-nan", lambda t: F.dropout(ones(3), float("nan"), generator=0), TinyLMError,
     r"dropout: p must be in \[0, 1\], got nan"),
    ("dropout-no-generator", lambda t: F.dropout(ones(3), 0.5), TinyLMError,
     r"dropout: pass generator="),
    ("linear-features", lambda t: F.linear(ones(2, 4), ones(5, 3)), ShapeError,
     r"linear: input has 4 features \(shape \(2, 4\)\), weight expects 3"),
    ("linear-scalar-input", lambda t: linear()(np.float64(1.0)), ShapeError,
     r"linear: input has no features \(shape \(\)\)"),
    ("linear-none-input", lambda t: linear()(None), DTypeError,
     r"Tensor: data must be numbers .*got NoneType"),
    ("embedding-float-ids", lambda t: F.embedding(np.array([1.0]), ones(10, 3)), DTypeError,
     r"embedding: each token id must be an integer, got dtype float64"),
    ("embedding-id-range", lambda t: F.embedding(np.array([1, 10]), ones(10, 3)),
     IndexRangeError, r"embedding: token id 10 is out of range \[0, 10\)"),
    ("embedding-weight-1d", lambda t: F.embedding(np.array([1]), ones(10)), ShapeError,
     r"embedding: weight must be 2-D .*got \(10,\)"),
    ("where-condition", lambda t: F.where(np.array([1.0, 0.0]), ones(2), 0.0), DTypeError,
     r"where: the condition must be a boolean array, got dtype float64"),
    ("masked-fill-condition", lambda t: F.masked_fill(ones(3), np.array([1, 0, 1]), 0.0),
     DTypeError, r"masked_fill: the condition must be a boolean array, got dtype int64"),
    ("concatenate-shapes", lambda t: F.concatenate([ones(2, 3), ones(3, 2)], axis=0),
     ShapeError, r"concatenate: shapes \[\(2, 3\), \(3, 2\)\] differ outside axis 0"),
    ("stack-shapes", lambda t: F.stack([ones(2, 3), ones(3, 2)]), ShapeError,
     r"stack: all shapes must be equal, got \[\(2, 3\), \(3, 2\)\]"),
    ("split-negative", lambda t: F.split(ones(4), [5, -1]), ShapeError,
     r"split: sizes must not be negative, got \[5, -1\]"),
    ("split-unequal", lambda t: F.split(ones(2, 5), 2), ShapeError,
     r"split: axis -1 of size 5 cannot be split into 2 equal"),
    ("sdpa-dk", lambda t: F.scaled_dot_product_attention(ones(2, 3, 4), ones(2, 3, 5),
                                                         ones(2, 3, 5)), ShapeError,
     r"scaled_dot_product_attention: query and key must have the same last axis"),
    ("sdpa-mask-dtype", lambda t: F.scaled_dot_product_attention(
        ones(2, 3, 4), ones(2, 3, 4), ones(2, 3, 4), attn_mask=np.ones((3, 3), int)),
     DTypeError, r"scaled_dot_product_attention: a mask must be boolean or floating point, "
                 r"got dtype int64"),
    ("sdpa-1d", lambda t: F.scaled_dot_product_attention(ones(4), ones(4), ones(4)),
     ShapeError, r"scaled_dot_product_attention: query must have at least 2 axes"),
    ("gelu-approximate", lambda t: nn.GELU("fast")(ones(2)), TinyLMError,
     r"gelu: approximate must be 'none' or 'tanh', got 'fast'"),

    # layers
    ("Linear-size", lambda t: nn.Linear(0, 3), TinyLMError,
     r"Linear: in_features must be a positive integer, got 0"),
    ("Embedding-size", lambda t: nn.Embedding(3, -1), TinyLMError,
     r"Embedding: embedding_dim must be a positive integer, got -1"),
    ("Embedding-padding", lambda t: nn.Embedding(5, 3, padding_idx=5), IndexRangeError,
     r"Embedding: padding_idx 5 is out of range for 5 embeddings"),
    ("Embedding-bool-ids", lambda t: nn.Embedding(5, 2, seed=0)(np.array([True])), DTypeError,
     r"embedding: each token id must be an integer, got dtype bool"),
    ("LayerNorm-shape", lambda t: nn.LayerNorm(0), TinyLMError,
     r"LayerNorm: normalized_shape must be positive integers, got 0"),
    ("LayerNorm-eps", lambda t: nn.LayerNorm(4, eps=-1e-5), TinyLMError,
     r"LayerNorm: eps must be a finite number >= 0, got -1e-05"),
    ("Dropout-p-type", lambda t: nn.Dropout("a"), TinyLMError,
     r"Dropout: p must be in \[0, 1\], got 'a'"),
    ("LSTM-features", lambda t: nn.LSTM(3, 4, seed=0)(f32(2, 1, 5)), ShapeError,
     r"LSTM: expected input_size 3 \(the last axis\), got 5"),
    ("LSTM-int-input", lambda t: nn.LSTM(3, 4, seed=0)(np.ones((2, 3, 3), np.int64)), DTypeError,
     r"LSTM: input must be floating point, got dtype int64"),
    ("LSTM-h0", lambda t: nn.LSTM(3, 4, seed=0)(f32(2, 1, 3), (f32(1, 1, 5), f32(1, 1, 4))),
     ShapeError, r"LSTM: h_0 must have shape \(1, 1, 4\) .*got \(1, 1, 5\)"),
    ("LSTM-hidden-size", lambda t: nn.LSTM(3, 0), TinyLMError,
     r"LSTM: hidden_size must be a positive integer, got 0"),
    ("GRU-layers", lambda t: nn.GRU(3, 4, num_layers=0), TinyLMError,
     r"GRU: num_layers must be a positive integer, got 0"),
    ("GRU-empty", lambda t: nn.GRU(3, 4, seed=0)(f32(0, 1, 3)), ShapeError,
     r"GRU: the sequence is empty \(input shape \(0, 1, 3\)\)"),
    ("RNN-nonlinearity", lambda t: nn.RNN(3, 4, nonlinearity="softplus"), TinyLMError,
     r"RNN: nonlinearity must be 'tanh', 'relu' or 'sigmoid', got 'softplus'"),
    ("MHA-heads", lambda t: nn.MultiheadAttention(10, 3), TinyLMError,
     r"MultiheadAttention: embed_dim \(10\) must be divisible by num_heads \(3\)"),
    ("MHA-features", lambda t: nn.MultiheadAttention(8, 2, seed=0)(f32(2, 3, 5), f32(2, 3, 5),
                                                                   f32(2, 3, 5)), ShapeError,
     r"MultiheadAttention: query has 5 features \(shape \(2, 3, 5\)\), expected 8"),
    ("MHA-padding-mask", lambda t: nn.MultiheadAttention(8, 2, seed=0, batch_first=True)(
        f32(2, 3, 8), f32(2, 3, 8), f32(2, 3, 8), key_padding_mask=np.zeros((2, 5), bool)),
     ShapeError, r"MultiheadAttention: key_padding_mask must have shape \(N, S\) = \(2, 3\)"),
    ("PositionalEncoding-kind", lambda t: nn.PositionalEncoding(8, kind="rotary"), TinyLMError,
     r"PositionalEncoding: kind must be 'sinusoidal' or 'learned', got 'rotary'"),
    ("PositionalEncoding-length", lambda t: nn.PositionalEncoding(8, max_len=4)(f32(10, 1, 8)),
     ShapeError, r"PositionalEncoding: sequence length 10 is longer than max_len=4"),
    ("EncoderLayer-activation", lambda t: nn.TransformerEncoderLayer(8, 2, activation="swish"),
     TinyLMError, r"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a function, "
                  r"got 'swish'"),
    ("EncoderLayer-mask", lambda t: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)(
        f32(3, 2, 8), src_mask=np.zeros((4, 4), bool)), ShapeError,
     r"attn_mask must have shape \(L, S\) = \(3, 3\) .*got \(4, 4\)"),
    ("Sequential-item", lambda t: nn.Sequential(linear(), 3), TinyLMError,
     r"Sequential: argument 1 must be a Module, got int"),
    ("load_state_dict-shape",
     lambda t: linear().load_state_dict({"weight": np.ones((3, 3)), "bias": np.ones(2)}),
     ShapeError, r"load_state_dict: weight has shape \(3, 3\) in the state, expected \(2, 3\)"),
    ("load_state_dict-missing", lambda t: linear().load_state_dict({"weight": np.ones((2, 3))}),
     TinyLMError, r"load_state_dict: missing keys \['bias'\]"),
    ("load_state_dict-strings",
     lambda t: linear().load_state_dict({"weight": np.full((2, 3), "a"), "bias": np.ones(2)}),
     DTypeError, r"load_state_dict: weight has dtype <U1 in the state, expected numbers"),
    ("Module.to", lambda t: linear().to("tpu"), DeviceError,
     r"unknown device 'tpu': expected 'cpu' or 'cuda' \(in Linear.to\)"),

    # optimisers and schedules
    ("SGD-lr", lambda t: sgd(lr=-1), TinyLMError, r"SGD: lr must be a number >= 0, got -1"),
    ("SGD-lr-nan", lambda t: sgd(lr=float("nan")), TinyLMError,
     r"SGD: lr must be a number >= 0, got nan"),
    ("SGD-momentum", lambda t: sgd(momentum=-0.5), TinyLMError,
     r"SGD: momentum must be a number >= 0, got -0.5"),
    ("SGD-nesterov", lambda t: sgd(nesterov=True), TinyLMError,
     r"SGD: nesterov=True needs momentum > 0"),
    ("Adam-betas", lambda t: optim.Adam(linear().parameters(), betas=(0.9, 1.0)), TinyLMError,
     r"Adam: betas\[1\] must be in \[0, 1\), got 1.0"),
    ("Adam-eps", lambda t: optim.Adam(linear().parameters(), eps=-1e-8), TinyLMError,
     r"Adam: eps must be a number >= 0, got -1e-08"),
    ("Adam-empty", lambda t: optim.Adam([]), TinyLMError,
     r"Adam: got an empty parameter list; expected at least one parameter"),
    ("Adam-single-parameter", lambda t: optim.Adam(linear().weight), TinyLMError,
     r"Adam: params must be an iterable of parameters or of dicts, got a single Parameter"),
    ("AdamW-weight-decay", lambda t: optim.AdamW(linear().parameters(), weight_decay=-1),
     TinyLMError, r"AdamW: weight_decay must be a number >= 0, got -1"),
    ("RMSprop-alpha", lambda t: optim.RMSprop(linear().parameters(), alpha=2), TinyLMError,
     r"RMSprop: alpha must be in \[0, 1\], got 2"),
    ("optimizer-load_state_dict", lambda t: sgd().load_state_dict([1]), TinyLMError,
     r"SGD.load_state_dict: expected a dict with 'state' and 'param_groups', got list"),
    ("optimizer-load-groups",
     lambda t: sgd().load_state_dict({"state": {}, "param_groups": []}), TinyLMError,
     r"SGD.load_state_dict: the saved state has 0 parameter groups, this optimiser has 1"),
    ("clip_grad_norm_", lambda t: optim.clip_grad_norm_(linear().parameters(), -1), TinyLMError,
     r"clip_grad_norm_: max_norm must be >= 0, got -1"),
    ("StepLR", lambda t: optim.StepLR(sgd(), step_size=0), TinyLMError,
     r"StepLR: step_size must be a positive integer, got 0"),
    ("CosineAnnealingLR", lambda t: optim.CosineAnnealingLR(sgd(), T_max=0), TinyLMError,
     r"CosineAnnealingLR: T_max must be a positive integer, got 0"),
    ("LambdaLR", lambda t: optim.LambdaLR(sgd(), lr_lambda=3), TinyLMError,
     r"LambdaLR: expected one function or a list of 1 functions .*got 3"),
    ("warmup_cosine_lr", lambda t: optim.warmup_cosine_lr(0, max_lr=1, min_lr=0,
                                                          warmup_steps=5, decay_steps=2),
     TinyLMError, r"warmup_cosine_lr: expected 0 <= warmup_steps <= decay_steps, got "
                  r"warmup_steps=5, decay_steps=2"),

    # vocabularies and tokenizers
    ("Vocab-empty", lambda t: Vocab.build([]), TinyLMError,
     r"Vocab: the corpus is empty \(no tokens to count\)"),
    ("Vocab-min_count", lambda t: Vocab.build([["a"]], min_count=0), TinyLMError,
     r"Vocab: min_count must be an integer >= 1, got 0"),
    ("Vocab-max_size", lambda t: Vocab.build([["a"]], max_size=-1), TinyLMError,
     r"Vocab: max_size must be an integer larger than the 4 specials, got -1"),
    ("Vocab-strings", lambda t: Vocab.build("abc def"), TinyLMError,
     r"Vocab.build: sentences must be lists of tokens; sentence 0 is a string"),
    ("Vocab-encode-string", lambda t: vocab().encode("a b"), TinyLMError,
     r"Vocab.encode: expected a list of tokens, got the string 'a b'"),
    ("Vocab-decode-range", lambda t: vocab().decode([100]), IndexRangeError,
     r"Vocab: id 100 is outside 0..5"),
    ("Vocab-decode-float", lambda t: vocab().decode([1.5]), DTypeError,
     r"Vocab: ids must be integers, got 1.5 \(float\)"),
    ("Vocab-from_dict", lambda t: Vocab.from_dict({"x": 1}), TinyLMError,
     r"Vocab.from_dict: not a saved tinylm Vocab"),
    ("Vocab-load-missing", lambda t: Vocab.load(t / "nope.json"), TinyLMError,
     r"cannot load Vocab: .*nope.json does not exist"),
    ("Vocab-load-json", lambda t: Vocab.load(write(t, "bad.json", "{not json")), TinyLMError,
     r"cannot load Vocab: .*bad.json is not valid UTF-8 JSON"),
    ("CharTokenizer-empty", lambda t: CharTokenizer.train([]), TinyLMError,
     r"Vocab: the corpus is empty"),
    ("CharTokenizer-encode", lambda t: char_tokenizer().encode(5), DTypeError,
     r"CharTokenizer.encode: expected a str, got int"),
    ("CharTokenizer-decode", lambda t: char_tokenizer().decode([999]), IndexRangeError,
     r"CharTokenizer.decode: id 999 is outside 0..6"),
    ("CharTokenizer-decode-negative", lambda t: char_tokenizer().decode([-1]), IndexRangeError,
     r"CharTokenizer.decode: id -1 is outside 0..6"),
    ("WordTokenizer-encode", lambda t: WordTokenizer.train(["a b"]).encode(None), DTypeError,
     r"WordTokenizer.encode: expected a str, got NoneType"),
    ("WordTokenizer-train-texts", lambda t: WordTokenizer.train(["a", 3]), DTypeError,
     r"WordTokenizer.train: text 1 is a int, expected a str"),
    ("BPETokenizer-vocab-size", lambda t: BPETokenizer.train(["abc"], vocab_size=10),
     TinyLMError, r"BPETokenizer.train: vocab_size must be an integer >= 256 \+ 0 specials, "
                  r"got 10"),
    ("BPETokenizer-decode", lambda t: BPETokenizer.train(["abcabc"], vocab_size=258).decode(
        [10 ** 6]), IndexRangeError, r"BPETokenizer.decode: id 1000000 is outside"),
    ("load_tokenizer-missing", lambda t: load_tokenizer(t / "nope.json"), TinyLMError,
     r"cannot load tokenizer: .*nope.json does not exist"),
    ("load_tokenizer-format", lambda t: load_tokenizer(write(t, "tok.json", '{"type": "x"}')),
     TinyLMError, r"load_tokenizer: .*tok.json is not a saved tinylm tokenizer"),
    ("clean", lambda t: clean(None), TinyLMError, r"clean: expected a str, got NoneType"),

    # text files, batching and data loaders
    ("load_text-missing", lambda t: load_text(t / "none.txt"), TinyLMError,
     r"load_text: .*none.txt does not exist \(expected a UTF-8 text file\)"),
    ("load_text-empty", lambda t: load_text(write(t, "empty.txt", "")), TinyLMError,
     r"load_text: .*empty.txt is empty \(expected UTF-8 text, got 0 bytes\)"),
    ("load_text-binary", lambda t: load_text(write(t, "bin.txt", b"\xff\x00\x01")), TinyLMError,
     r"load_text: .*bin.txt is not a text file"),
    ("load_text-folder", lambda t: load_text(t), TinyLMError,
     r"load_text: .* is not a file \(expected a UTF-8 text file\)"),
    ("lm_blocks-short", lambda t: lm_blocks(np.arange(3), 8), ShapeError,
     r"lm_blocks: need at least block_size \+ 1 = 9 ids .*got 3"),
    ("lm_blocks-float", lambda t: lm_blocks(np.arange(30) * 1.0, 8), DTypeError,
     r"lm_blocks: ids must be integers, got dtype float64"),
    ("lm_blocks-2d", lambda t: lm_blocks(np.ones((3, 10), int), 4), ShapeError,
     r"lm_blocks: ids must be 1-D .*got shape \(3, 10\)"),
    ("lm_blocks-size", lambda t: lm_blocks(np.arange(30), 0), TinyLMError,
     r"lm_blocks: block_size must be a positive integer, got 0"),
    ("LMBatches-batch", lambda t: LMBatches(np.arange(30), 4, 0), TinyLMError,
     r"LMBatches: batch_size must be a positive integer, got 0"),
    ("random_windows-short", lambda t: random_windows(
        {"train": np.arange(5), "val": np.arange(5)}, 8, 2)("train", np.random.default_rng(0)),
     ShapeError, r"random_windows: the train split has 5 tokens, fewer than block size \+ 2"),
    ("random_windows-split", lambda t: random_windows(
        {"train": np.arange(50), "val": np.arange(50)}, 8, 2)("test", np.random.default_rng(0)),
     TinyLMError, r"get_batch: no split 'test'; have \['train', 'val'\]"),
    ("pad_sequences-side", lambda t: pad_sequences([[1, 2]], side="middle"), TinyLMError,
     r"pad_sequences: side must be 'right' or 'left', got 'middle'"),
    ("pad_sequences-empty", lambda t: pad_sequences([]), ShapeError,
     r"pad_sequences: need at least one sequence, got none"),
    ("bucket_batches-labels", lambda t: list(bucket_batches([[1], [2]], labels=[0],
                                                            batch_size=2)), ShapeError,
     r"bucket_batches: need one label per sequence, got 1 labels for 2 sequences"),
    ("train_val_test_split", lambda t: train_val_test_split(list(range(10)), (0.5, 0.6, 0.1)),
     TinyLMError, r"train_val_test_split: fractions must sum to 1, got \[0.5, 0.6, 0.1\]"),
    ("load_labelled_tsv-line", lambda t: D.load_labelled_tsv(write(t, "b.tsv", "good 1\n")),
     TinyLMError, r"load_labelled_tsv: .*b.tsv line 1: expected text<TAB>integer label, "
                  r"got 'good 1'"),
    ("load_labelled_tsv-class", lambda t: D.load_labelled_tsv(write(t, "c.tsv", "x\t5\n"),
                                                              num_classes=2),
     IndexRangeError, r"load_labelled_tsv: .*c.tsv line 1: label must be in 0..1, got 5"),
    ("load_sst2-split", lambda t: D.load_sst2(t, split="validation"), TinyLMError,
     r"load_sst2: split must be one of \['dev', 'train'\], got 'validation'"),
    ("load_tatoeba-line", lambda t: D.load_tatoeba(write(t, "t.txt", "hello\n")), TinyLMError,
     r"load_tatoeba: .*t.txt line 1: expected English<TAB>French, got 'hello'"),
    ("read_parallel-lengths", lambda t: D.read_parallel(write(t, "s.en", "a\nb\n"),
                                                        write(t, "s.de", "a\n")), TinyLMError,
     r"read_parallel: .*s.en has 2 lines but .*s.de has 1"),
    ("load_multi30k-language", lambda t: D.load_multi30k(t, src="xx"), TinyLMError,
     r"load_multi30k: src must be one of \('en', 'de', 'fr'\), got 'xx'"),
    ("load_word_lm-missing", lambda t: D.load_word_lm(t / "nope"), TinyLMError,
     r"load_word_lm: .*nope does not exist"),
    ("date_pairs", lambda t: D.date_pairs(-5), TinyLMError,
     r"date_pairs: n must be a positive integer, got -5"),
    ("nanogpt_split", lambda t: D.nanogpt_split(list(range(10)), val_fraction=1.5), TinyLMError,
     r"nanogpt_split: val_fraction must be in \(0, 1\), got 1.5"),

    # word2vec, GloVe, word vectors
    ("Word2Vec-vector_size", lambda t: Word2Vec(vector_size=0), TinyLMError,
     r"Word2Vec: vector_size must be an integer >= 1, got 0"),
    ("Word2Vec-window", lambda t: Word2Vec(window=2.5), TinyLMError,
     r"Word2Vec: window must be an integer >= 1, got 2.5"),
    ("Word2Vec-empty", lambda t: Word2Vec([], min_count=1), TinyLMError,
     r"Word2Vec: the corpus is empty \(0 sentences, 0 words\)"),
    ("Word2Vec-strings", lambda t: Word2Vec(["abc def"], min_count=1, epochs=1), TinyLMError,
     r"Word2Vec: sentences must be lists of tokens; sentence 0 is a string"),
    ("Word2Vec-min_count", lambda t: Word2Vec([["a", "b"]], min_count=5), TinyLMError,
     r"Word2Vec: min_count=5 leaves no word"),
    ("Word2Vec-alpha", lambda t: Word2Vec(alpha=float("nan")), TinyLMError,
     r"Word2Vec: need alpha > 0 .*got alpha=nan"),
    ("Word2Vec-sample", lambda t: Word2Vec(sample=float("nan")), TinyLMError,
     r"Word2Vec: sample must be in \[0, 1\), got nan"),
    ("Word2Vec-ns_exponent", lambda t: Word2Vec(ns_exponent=float("nan")), TinyLMError,
     r"Word2Vec: ns_exponent must be a finite number, got nan"),
    ("Word2Vec-sg", lambda t: Word2Vec(sg=2), TinyLMError,
     r"Word2Vec: sg must be 0 \(CBOW\) or 1 \(skip-gram\), got 2"),
    ("Word2Vec-train-first", lambda t: Word2Vec(min_count=1).train([["a"]]), TinyLMError,
     r"Word2Vec.train: build_vocab\(sentences\) first"),
    ("Word2Vec-device", lambda t: Word2Vec(device="tpu"), DeviceError,
     r"unknown device 'tpu': expected 'cpu' or 'cuda' \(in Word2Vec\)"),
    ("Word2Vec-load", lambda t: Word2Vec.load(write(t, "w.npz", b"PK\x03\x04junk")),
     TinyLMError, r"cannot load Word2Vec: .*w.npz is not an .npz archive of plain arrays"),
    ("Word2Vec-save-empty", lambda t: Word2Vec().save(t / "w2.npz"), TinyLMError,
     r"Word2Vec.save: the model has no vocabulary yet"),
    ("GloVe-vector_size", lambda t: GloVe(vector_size=0), TinyLMError,
     r"GloVe: vector_size must be an integer >= 1, got 0"),
    ("GloVe-learning_rate", lambda t: GloVe(learning_rate=float("nan")), TinyLMError,
     r"GloVe: learning_rate must be a positive number, got nan"),
    ("GloVe-empty", lambda t: GloVe([], min_count=1), TinyLMError,
     r"GloVe: Vocab: the corpus is empty"),
    ("GloVe-no-pairs", lambda t: GloVe([["a"]], min_count=1), TinyLMError,
     r"GloVe: no two vocabulary words occur within window=10"),
    ("GloVe-train-first", lambda t: GloVe(min_count=1).train(), TinyLMError,
     r"GloVe.train: call build\(sentences\) first"),
    ("GloVe-load-pickle", lambda t: GloVe.load(write(t, "g.npz", b"garbage")), TinyLMError,
     r"cannot load GloVe: .*g.npz is not an .npz archive of plain arrays"),
    ("KeyedVectors-unknown", lambda t: keyed_vectors()["zzz"], VocabularyError,
     r"'zzz' is not in the vocabulary \(3 words\)"),
    ("KeyedVectors-shapes", lambda t: KeyedVectors(["a", "b"], np.ones((3, 2))), ShapeError,
     r"KeyedVectors: 2 keys but 3 vectors"),
    ("KeyedVectors-duplicates", lambda t: KeyedVectors(["a", "a"], np.ones((2, 2))),
     TinyLMError, r"KeyedVectors: keys must be distinct, 'a' occurs twice"),
    ("KeyedVectors-vector", lambda t: keyed_vectors().similar_by_vector(np.ones(5)), ShapeError,
     r"KeyedVectors.most_similar: a vector must have shape \(3,\), got \(5,\)"),
    ("load_word2vec_format-line", lambda t: KeyedVectors.load_word2vec_format(
        write(t, "bad.vec", "2 3\na 1 2\nb 1 2 3\n")), TinyLMError,
     r"load_word2vec_format: line 2 of .*bad.vec has 2 numbers, expected 3"),
    ("load_word2vec_format-header", lambda t: KeyedVectors.load_word2vec_format(
        write(t, "bad2.vec", "x y\n")), TinyLMError,
     r"load_word2vec_format: .*bad2.vec does not start with a 'V d' header line"),
    ("evaluate_word_pairs-missing", lambda t: keyed_vectors().evaluate_word_pairs(
        t / "none.txt"), TinyLMError, r"evaluate_word_pairs: .*none.txt does not exist"),

    # models and generation
    ("GPTConfig-heads", lambda t: GPTConfig(n_embd=10, n_head=3), TinyLMError,
     r"GPTConfig: n_embd=10 must be divisible by n_head=3"),
    ("GPTConfig-dropout", lambda t: GPTConfig(dropout=1.0), TinyLMError,
     r"GPTConfig: dropout must be in \[0, 1\), got 1.0"),
    ("GPTConfig-layers", lambda t: GPTConfig(n_layer=1.5), TinyLMError,
     r"GPTConfig: n_layer must be a positive integer, got 1.5"),
    ("GPT-config", lambda t: GPT({"n_layer": 1}), TinyLMError,
     r"GPT: expected a GPTConfig, got dict"),
    ("GPT-too-long", lambda t: gpt()(np.zeros((1, 9), int)), ShapeError,
     r"GPT: sequence of length 9 is longer than block_size=8"),
    ("GPT-id-range", lambda t: gpt()(np.array([[0, 7]])), IndexRangeError,
     r"GPT: idx must be in \[0, 5\), got values in \[0, 7\]"),
    ("GPT-float-ids", lambda t: gpt()(np.zeros((1, 3))), ShapeError,
     r"GPT: idx must be \(B, T\) integer token ids .*dtype float64"),
    ("GPT-targets-shape", lambda t: gpt()(np.zeros((1, 3), int), np.zeros((1, 2), int)),
     ShapeError, r"GPT: targets \(1, 2\) must have the shape of idx \(1, 3\)"),
    ("GPT-generate-count", lambda t: gpt().generate(np.zeros((1, 2), int), -1), TinyLMError,
     r"GPT.generate: max_new_tokens must be an integer >= 0, got -1"),
    ("GPT-generate-top_k", lambda t: gpt().generate(np.zeros((1, 2), int), 2, top_k=0),
     TinyLMError, r"generate: top_k must be a positive integer, got 0"),
    ("GPT-generate-top_p", lambda t: gpt().generate(np.zeros((1, 2), int), 2, top_p=1.5),
     TinyLMError, r"generate: top_p must be in \(0, 1\], got 1.5"),
    ("GPT-crop", lambda t: gpt().crop_block_size(20), TinyLMError,
     r"GPT.crop_block_size: need 0 < 20 <= 8"),
    ("RNNLM-cell", lambda t: RNNLM(5, 4, 4, cell="transformer"), TinyLMError,
     r"RNNLM: cell must be one of .*got 'transformer'"),
    ("RNNLM-ids", lambda t: RNNLM(5, 4, 4, seed=0)(np.array([[0, 9]])), IndexRangeError,
     r"RNNLM: idx must be in \[0, 5\), got values in \[0, 9\]"),
    ("RNNLM-generate-count", lambda t: RNNLM(5, 4, 4, seed=0).generate(np.zeros((1, 2), int),
                                                                       2.5), TinyLMError,
     r"RNNLM.generate: max_new_tokens must be an integer >= 0, got 2.5"),
    ("LSTMClassifier-pooling", lambda t: LSTMClassifier(5, pooling="median"), TinyLMError,
     r"LSTMClassifier: pooling must be one of .*got 'median'"),
    ("LSTMClassifier-lengths", lambda t: LSTMClassifier(5, 4, 4, seed=0)(
        np.ones((2, 3), int), np.array([0, 5])), ShapeError,
     r"LSTMClassifier: lengths must be \(B,\) = \(2,\) values in 1..3, got \[0, 5\]"),
    ("TransformerClassifier-length", lambda t: TransformerClassifier(
        5, 8, 2, 1, 16, max_len=4, seed=0)(np.ones((1, 6), int)), ShapeError,
     r"TransformerClassifier: sequences of 6 tokens are longer than max_len=4"),
    ("Seq2Seq-target", lambda t: Seq2SeqTransformer(5, 5, 8, 2, 1, 1, 16, seed=0)(
        np.ones((1, 3), int), np.ones((1, 3), int), np.ones((1, 2), int)), ShapeError,
     r"Seq2SeqTransformer: tgt_out \(1, 2\) must match tgt_in \(1, 3\)"),
    ("next_token-temperature", lambda t: G.next_token_distribution(np.ones(5), temperature=-1),
     TinyLMError, r"generate: temperature must be >= 0, got -1"),
    ("next_token-nan", lambda t: G.next_token_distribution(np.array([np.nan, 1.0])),
     TinyLMError, r"generate: the logits contain NaN"),
    ("sample-rng", lambda t: G.sample_next_token(np.ones(5), rng=5), TinyLMError,
     r"generate: rng must be a numpy.random.Generator .*got int"),
    ("accuracy-lengths", lambda t: metrics.accuracy([1, 2], [1]), ShapeError,
     r"metrics: y_true has 2 labels, y_pred has 1"),
    ("perplexity-nan", lambda t: metrics.perplexity(float("nan")), TinyLMError,
     r"perplexity: the mean negative log-likelihood must be finite and >= 0, got nan"),
    ("corpus_bleu-lengths", lambda t: metrics.corpus_bleu([["a"]], []), ShapeError,
     r"corpus_bleu: 1 hypotheses but 0 references"),

    # checkpoints
    ("checkpoint-missing", lambda t: checkpoint.load(t / "nope.safetensors"), TinyLMError,
     r"checkpoint: .*nope.safetensors does not exist"),
    ("checkpoint-suffix", lambda t: checkpoint.load(write(t, "x.pt", b"abc")), TinyLMError,
     r"checkpoint: the file name must end in .safetensors or .npz, got '.*x.pt'"),
    ("checkpoint-save-dtype", lambda t: checkpoint.save(t / "s.safetensors",
                                                        {"w": np.array(["a"])}), TinyLMError,
     r"checkpoint: 'w' has dtype <U1; supported: "),
    ("checkpoint-truncated", lambda t: saved_checkpoint(t, lambda raw: raw[:-5]) and
     checkpoint.load(t / "ckpt.safetensors"), TinyLMError,
     r"checkpoint: .*ckpt.safetensors is not a valid safetensors file \(tensor 'bias'"),
    ("checkpoint-cut-header", lambda t: saved_checkpoint(t, lambda raw: raw[:40]) and
     checkpoint.load(t / "ckpt.safetensors"), TinyLMError,
     r"is not a valid safetensors file \(the header says \d+ bytes but the file has only 32"),
    ("checkpoint-altered", lambda t: saved_checkpoint(t, flip_last_byte) and
     checkpoint.load(t / "ckpt.safetensors"), TinyLMError,
     r"checkpoint: .*ckpt.safetensors is corrupt: its SHA-256 checksum does not match"),
    ("checkpoint-edited-metadata", lambda t: saved_checkpoint(
        t, lambda raw: raw.replace(b'iter\\": 3', b'iter\\": 9')) and
     checkpoint.load(t / "ckpt.safetensors"), TinyLMError, r"is corrupt: its SHA-256 checksum"),
    ("checkpoint-header-list", lambda t: checkpoint.load(
        write(t, "l.safetensors", safetensors_bytes([]))), TinyLMError,
     r"not a valid safetensors file \(the header is a JSON list, expected an object\)"),
    ("checkpoint-offsets", lambda t: checkpoint.load(write(t, "o.safetensors", safetensors_bytes(
        {"a": {"dtype": "F32", "shape": [1], "data_offsets": "xx"}}))), TinyLMError,
     r"not a valid safetensors file \(tensor 'a': .*does not fit the 0 bytes of data\)"),
    ("checkpoint-negative-shape", lambda t: checkpoint.load(write(
        t, "n.safetensors", safetensors_bytes({"a": {"dtype": "F32", "shape": [-1],
                                                     "data_offsets": [0, 0]}}))), TinyLMError,
     r"not a valid safetensors file \(tensor 'a'"),
    ("checkpoint-trailing-bytes", lambda t: checkpoint.load(write(
        t, "e.safetensors", safetensors_bytes({"a": {"dtype": "U8", "shape": [1],
                                                     "data_offsets": [0, 1]}}, b"xy"))),
     TinyLMError, r"the tensors end at byte 1 of the data, but it has 2 bytes"),
    ("checkpoint-metadata", lambda t: checkpoint.load(write(t, "m.safetensors", safetensors_bytes(
        {"__metadata__": {"tinylm": "{bad"}}))), TinyLMError,
     r"not a valid safetensors file \(the tinylm metadata is not JSON\)"),
    ("checkpoint-npz-pickle", lambda t: np.savez(t / "p.npz", w=np.array([{}], dtype=object))
     or checkpoint.load(t / "p.npz"), TinyLMError,
     r"cannot load checkpoint: .*p.npz is not an .npz archive of plain arrays"),

    # the Trainer
    ("TrainConfig-max_iters", lambda t: TrainConfig(max_iters=0), TinyLMError,
     r"TrainConfig: max_iters must be a positive integer, got 0"),
    ("TrainConfig-lr", lambda t: TrainConfig(lr=float("nan")), TinyLMError,
     r"TrainConfig: need lr > 0 and 0 <= min_lr <= lr, got lr=nan"),
    ("TrainConfig-checkpoint_interval", lambda t: TrainConfig(checkpoint_interval=0),
     TinyLMError, r"TrainConfig: checkpoint_interval must be a positive integer, got 0"),
    ("TrainConfig-grad_clip", lambda t: TrainConfig(grad_clip=-1.0), TinyLMError,
     r"TrainConfig: grad_clip must be a finite number >= 0 .*got -1.0"),
    ("Trainer-model", lambda t: Trainer(None, None, None), TinyLMError,
     r"Trainer: model must be a Module, got NoneType"),
    ("Trainer-batch", lambda t: tiny_trainer(get_batch=lambda split, rng: None).fit(),
     TinyLMError, r"train: get_batch\('train', rng\) must return a pair \(x, y\), got NoneType"),
    ("Trainer-loss", lambda t: tiny_trainer(loss_fn=lambda m, x, y: 1.0).fit(), TinyLMError,
     r"train: loss_fn must return a scalar Tensor, got float"),
    ("Trainer-nan-loss", lambda t: tiny_trainer(
        loss_fn=lambda m, x, y: m(x, y)[1] * np.nan).fit(), NumericalError,
     r"train: the loss is nan at iteration 0 .*No checkpoint was written"),
    ("Trainer-resume", lambda t: tiny_trainer(out_dir=str(t / "run")).fit(resume=True),
     TinyLMError, r"train: cannot resume, .*ckpt.safetensors does not exist"),

    # the command line (python -m tinylm) and a chapter's options
    ("cli-lr", lambda t: cli("train", "gpt", "--lr", "-1"), UsageError,
     r"train gpt: argument --lr: expected a positive float, got '-1'"),
    ("cli-lr-inf", lambda t: cli("train", "gpt", "--lr", "inf"), UsageError,
     r"train gpt: argument --lr: expected a positive float, got 'inf'"),
    ("cli-model", lambda t: cli("train", "bert"), UsageError,
     r"train: argument MODEL: invalid choice: 'bert'"),
    ("cli-flag", lambda t: cli("train", "gpt", "--frobnicate"), UsageError,
     r"unrecognized arguments: --frobnicate"),
    ("cli-max-iters", lambda t: cli("train", "gpt", "--max-iters", "0"), UsageError,
     r"train gpt: argument --max-iters: expected a positive int, got '0'"),
    ("cli-dropout", lambda t: cli("train", "gpt", "--dropout", "1.5"), UsageError,
     r"train gpt: argument --dropout: expected a number in \[0, 1\), got '1.5'"),
    ("cli-device", lambda t: cli("train", "gpt", "--device", "tpu"), UsageError,
     r"train gpt: argument --device: invalid choice: 'tpu'"),
    ("cli-translator-data", lambda t: cli("train", "translator", "--data", "klingon", "--out",
                                          t / "o"), UsageError,
     r"train translator: --data must be one of \['dates', 'multi30k', 'tatoeba'\], got "
     r"'klingon'"),
    ("cli-resume", lambda t: cli("train", "gpt", "--resume", "--out", t / "none",
                                 "--max-iters", "1"), TinyLMError,
     r"--resume: there is no checkpoint .*none/ckpt.safetensors to resume from"),
    ("cli-corpus", lambda t: cli("train", "gpt", "--corpus", t / "none.txt", "--max-iters", "1",
                                 "--out", t / "o"), TinyLMError,
     r"load_text: .*none.txt does not exist"),
    ("cli-generate", lambda t: cli("generate", "--checkpoint", t / "none", "--prompt", "a"),
     TinyLMError, r"--checkpoint: .*none does not exist \(expected a checkpoint file"),
    ("cli-evaluate", lambda t: cli("evaluate", "--checkpoint", t / "none"), TinyLMError,
     r"--checkpoint: .*none does not exist"),
    ("chapter-device", lambda t: chapter_options("--device", "tpu"), ScriptExit,
     r"exit status 2: .*chapter 03: error: argument --device: invalid choice: 'tpu'"),
    ("chapter-out", lambda t: chapter_options("--out"), ScriptExit,
     r"exit status 2: .*chapter 03: error: argument --out/--figures: expected one argument"),
]


@pytest.mark.parametrize("make, kind, pattern",
                         [pytest.param(make, kind, pattern, id=name)
                          for name, make, kind, pattern in ROWS])
def test_bad_input_gets_a_clear_tinylm_error(make, kind, pattern, tmp_path):
    with pytest.raises(kind) as info:
        make(tmp_path)
    error = info.value
    assert type(error) is kind, f"expected {kind.__name__}, got {type(error).__name__}: {error}"
    assert re.search(pattern, str(error), flags=re.DOTALL), \
        f"message {str(error)!r} does not match {pattern!r}"


def test_the_table_is_large_and_its_ids_unique():
    names = [row[0] for row in ROWS]
    assert len(names) == len(set(names))
    # every row expects a tinylm error (a chapter is a script: it answers with its usage
    # line and status 2); the test above checks the exact type, so this holds of the code
    assert all(issubclass(kind, TinyLMError) or kind is ScriptExit for _, _, kind, _ in ROWS)
    assert len(ROWS) >= 100, len(ROWS)

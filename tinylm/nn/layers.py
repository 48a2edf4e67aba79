"""The basic layers: Linear, Embedding, LayerNorm, Dropout and the activations.

Each takes ``seed=`` (an int, a ``numpy.random.Generator``, or None for fresh entropy) for its
initial weights and ``dtype=`` (float32 by default, float64 for gradient checks), and
initialises exactly as PyTorch does, so the two can be compared layer by layer.
"""
import math

import numpy as np

from .. import functional as F
from ..backend import DEFAULT_DTYPE
from ..errors import TinyLMError
from .module import Module, Parameter, make_rng, uniform


class Linear(Module):
    """y = x W^T + b; W (out_features, in_features), both U(-1/sqrt(in), 1/sqrt(in)).

    C1: one output unit is a neuron, z = sum(x * w) + b.
    """

    def __init__(self, in_features, out_features, bias=True, seed=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        _check_positive("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        rng = make_rng(seed)
        bound = 1 / math.sqrt(in_features)
        self.weight = uniform(rng, (out_features, in_features), bound, dtype)
        self.bias = uniform(rng, (out_features,), bound, dtype) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"


class Embedding(Module):
    """A table of ``num_embeddings`` vectors; ``emb(ids)`` = weight[ids] (A5, C5, E3).

    Weights start N(0, 1) as in PyTorch; the ``padding_idx`` row starts at zero and gets no
    gradient, so padding contributes nothing.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, seed=None,
                 dtype=DEFAULT_DTYPE):
        super().__init__()
        _check_positive("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        F.check_padding_idx(padding_idx, num_embeddings, "Embedding")
        if padding_idx is not None:
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        weight = make_rng(seed).standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.weight = Parameter(weight)

    def forward(self, ids):
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class LayerNorm(Module):
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing ``normalized_shape``;
    weight starts at 1, bias at 0."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=DEFAULT_DTYPE):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
            else tuple(normalized_shape)
        if not shape or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
            raise TinyLMError(f"LayerNorm: normalized_shape must be positive integers, got "
                              f"{normalized_shape!r}")
        if not (isinstance(eps, (int, float, np.floating)) and 0 <= eps < float("inf")):
            raise TinyLMError(f"LayerNorm: eps must be a finite number >= 0, got {eps!r}")
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(np.ones(shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype)) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    """Inverted dropout while training, the identity in ``eval()`` mode. It owns its
    random generator (``seed=``), so a run is repeatable."""

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        if not (isinstance(p, (int, float, np.number)) and 0 <= p <= 1):
            raise TinyLMError(f"Dropout: p must be in [0, 1], got {p!r}")
        self.p = p
        self.rng = make_rng(seed)

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self):
        return f"p={self.p}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


def _check_positive(who, **sizes):
    for name, n in sizes.items():
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise TinyLMError(f"{who}: {name} must be a positive integer, got {n!r}")

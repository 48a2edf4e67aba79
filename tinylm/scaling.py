"""What a model costs and how its loss scales (A16, D8): parameters, FLOPs per token, memory,
and the power law ``L(N) = a N^-alpha (+ c)``.

A16 lists "high compute cost" among the drawbacks of large language models, and D8 says that
larger models are more capable. Both are claims about numbers this module computes, for
``tinylm.models.GPT`` (nanoGPT's GPT-2) with d = n_embd, L = n_layer, V = vocab_size,
T = block_size (or the sequence length actually run), H = n_head:

Parameters (with biases; ``bias=False`` drops them and the LayerNorm shifts)::

    N = V d                    token embedding, also the output head (weight tying)
      + T d                    position embedding
      + L (12 d^2 + 13 d)      per block: c_attn 3d^2+3d, attn.c_proj d^2+d, c_fc 4d^2+4d,
                               mlp.c_proj 4d^2+d, ln_1 and ln_2 2d each
      + 2 d                    the final LayerNorm
    without biases: V d + T d + L (12 d^2 + 2 d) + d

FLOPs per token (a multiply-add is 2 FLOPs; matrix products only, everything else is O(d))::

    forward   = L (24 d^2 + 4 T d) + 2 d V      24 d^2: the 12 d^2 block weights, twice;
                                              4 T d: Q K^T and weights @ V over T keys, as
                                              computed (masked entries included); 2 d V: head
    backward  = 2 x forward                   a @ b gives dL/da = g b^T and dL/db = a^T g,
                                              two products of the same size
    training  = 3 x forward ~ 6 N             Kaplan et al. (2020), N the matmul parameters

Memory of training with Adam, in float32: weights 4N + gradients 4N + Adam's two moments 8N
bytes, plus the activations the graph keeps for the backward pass (``gpt_activation_bytes``,
checked against ``graph_bytes`` of a real forward pass).

``matmul_flops`` and ``graph_bytes`` measure a real graph (what ``loss.backward()`` will walk)
rather than trusting the formulas: the tests check that the two agree exactly.
"""
import gc
import math
import tracemalloc
from dataclasses import dataclass

import numpy as np

from .errors import ShapeError, TinyLMError
from .tensor import Tensor

__all__ = ["gpt_parameter_count", "GPT2_SIZES", "gpt_forward_flops", "matmul_flops",
           "graph_bytes", "gpt_activation_bytes", "training_memory_bytes",
           "optimizer_state_bytes", "PowerLaw", "fit_power_law"]

# GPT-2's four released sizes (Radford et al. 2019; nanoGPT's from_pretrained configs), with
# the parameter counts of the released checkpoints: their names are these rounded
# (124M, 355M, 774M, 1.5B; the GPT-2 paper's table says 117M, 345M, 762M, 1542M, counts
# that were later corrected).
GPT2_SIZES = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, params=124_439_808),
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024, params=354_823_168),
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280, params=774_030_080),
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600, params=1_557_611_200),
}
GPT2_VOCAB, GPT2_CONTEXT = 50257, 1024


def _dims(config, who):
    """(L, d, V, T, H, bias, dropout) of a GPTConfig-like object, checked."""
    names = ("n_layer", "n_embd", "vocab_size", "block_size", "n_head")
    missing = [n for n in names if not hasattr(config, n)]
    if missing:
        raise TinyLMError(f"{who}: expected a GPTConfig (or an object with {', '.join(names)}),"
                          f" got {type(config).__name__} without {', '.join(missing)}")
    values = [getattr(config, n) for n in names]
    for n, v in zip(names, values):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise TinyLMError(f"{who}: {n} must be a positive integer, got {v!r}")
    return (*(int(v) for v in values), bool(getattr(config, "bias", True)),
            float(getattr(config, "dropout", 0.0)))


def _seq_len(seq_len, block_size, who):
    if seq_len is None:
        return block_size
    if not isinstance(seq_len, (int, np.integer)) or not 1 <= seq_len <= block_size:
        raise TinyLMError(f"{who}: seq_len must be an integer in [1, block_size={block_size}],"
                          f" got {seq_len!r}")
    return int(seq_len)


# --- parameters ----------------------------------------------------------------------------
def gpt_parameter_count(config):
    """The parameters of ``GPT(config)`` by the formula of the module docstring, by part:
    ``token_embedding`` (V d, shared with the head), ``position_embedding`` (T d),
    ``per_block``, ``blocks`` (L per_block), ``final_norm``, ``total``, and ``non_embedding``
    (total minus both embeddings: Kaplan's N)."""
    L, d, V, T, _, bias, _ = _dims(config, "gpt_parameter_count")
    per_block = 12 * d * d + (13 * d if bias else 2 * d)
    parts = {"token_embedding": V * d, "position_embedding": T * d, "per_block": per_block,
             "blocks": L * per_block, "final_norm": 2 * d if bias else d}
    parts["total"] = (parts["token_embedding"] + parts["position_embedding"] + parts["blocks"]
                      + parts["final_norm"])
    parts["non_embedding"] = parts["blocks"] + parts["final_norm"]
    return parts


# --- FLOPs ---------------------------------------------------------------------------------
def gpt_forward_flops(config, seq_len=None):
    """Matrix-product FLOPs per token of one forward pass over ``seq_len`` tokens (default
    block_size): ``weights`` L 24 d^2, ``attention`` L 4 T d (the full T x T scores and their
    weighted sum, as computed), ``head`` 2 d V, ``total``; ``training`` = 3 x total (the
    backward pass is two products per forward product)."""
    L, d, V, T, _, _, _ = _dims(config, "gpt_forward_flops")
    T = _seq_len(seq_len, T, "gpt_forward_flops")
    parts = {"weights": L * 24 * d * d, "attention": L * 4 * T * d, "head": 2 * d * V}
    parts["total"] = parts["weights"] + parts["attention"] + parts["head"]
    parts["training"] = 3 * parts["total"]
    return parts


def _graph_nodes(output, who):
    """Every tensor of the graph below ``output`` (iterative: deep graphs are fine)."""
    if not isinstance(output, Tensor):
        raise TinyLMError(f"{who}: expected the Tensor a forward pass returned, got "
                          f"{type(output).__name__}")
    if output.creator is None:
        raise TinyLMError(f"{who}: the tensor has no graph (it was computed under no_grad(), or "
                          f"nothing it depends on requires a gradient)")
    nodes, seen, stack = [], {id(output)}, [output]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if node.creator is not None:
            for x in node.creator.inputs:
                if id(x) not in seen:
                    seen.add(id(x))
                    stack.append(x)
    return nodes


def _product_flops(a_shape, b_shape):
    """2 m k n per matrix of the (broadcast) batch: one multiply and one add per term."""
    m = a_shape[-2] if len(a_shape) > 1 else 1
    k = a_shape[-1]
    n = b_shape[-1] if len(b_shape) > 1 else 1
    batch = math.prod(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    return 2 * batch * m * k * n


def matmul_flops(output):
    """Count the matrix-product FLOPs of the graph below ``output`` (e.g. a loss), node by
    node: ``{"forward", "backward", "products"}``. A product a @ b costs 2 m k n in the
    forward pass; its backward computes one product of the same size for each input that
    needs a gradient (dL/da = g b^T, dL/db = a^T g).

    ``FusedAttention`` counts as its two products (Q K^T, P V) and the four of its backward.
    Its streaming path (sequences longer than 256) computes them tile by tile, skipping
    masked tiles, which this count does not model: it raises TinyLMError."""
    forward = backward = products = 0
    for node in _graph_nodes(output, "matmul_flops"):
        fn = node.creator
        name = type(fn).__name__
        if name == "FusedAttention":
            if fn.weights is None:
                raise TinyLMError("matmul_flops: the graph holds a streaming FusedAttention node "
                                  "(more than 256 x 256 scores per head), whose tiled products "
                                  "are not counted here; count a sequence of at most 256 tokens")
            # S = Q K^T and P V forward; backward dV = P^T g, dP = g V^T, dQ = dS K, dK = dS^T Q
            scores = _product_flops(fn.q.shape, fn.k.shape[:-2] + fn.k.shape[-1:-3:-1])
            mixing = _product_flops(fn.weights.shape, fn.v.shape)
            need_q, need_k, need_v = (bool(n) for n in fn.needs_grad)
            forward += scores + mixing
            backward += mixing * (need_v + (need_q or need_k)) + scores * (need_q + need_k)
            products += 2
            continue
        if name != "MatMul":
            continue
        f = _product_flops(fn.a.shape, fn.b.shape)
        forward += f
        backward += f * sum(bool(n) for n in fn.needs_grad)
        products += 1
    return {"forward": forward, "backward": backward, "products": products}


# --- memory --------------------------------------------------------------------------------
def _owner(array):
    """The array that owns a view's memory (a view keeps its whole base alive)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _arrays_of(fn):
    """The arrays a Function keeps for its backward pass (attributes, or tuples of them)."""
    for value in vars(fn).values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, np.ndarray):
                yield item


def traced_memory(compute):
    """``(retained, peak, result)`` of ``compute()`` as ``tracemalloc`` sees it (NumPy reports
    its buffers there): the bytes the call leaves allocated, its highest point, both counted
    from where it started, and what it returned. The memory a forward pass keeps for the
    backward is its ``retained``; a kernel's working memory its ``peak``."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = compute()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current - before, peak - before, result


def graph_bytes(output, exclude=(), by_op=False):
    """Bytes of memory the graph below ``output`` keeps alive until ``backward()``: the data
    of every tensor in it (a Function holds its inputs) and every array a Function saved,
    each buffer counted once (a view counts its base), leaving out the arrays of ``exclude``
    (pass the model's parameters: they are not activations). With ``by_op``: a dict
    {name of the Function that made or saved the buffer: bytes} instead of the total."""
    skip = {id(_owner(p if isinstance(p, np.ndarray) else p.data)) for p in exclude}
    counted, table = set(), {}

    def add(array, op):
        owner = _owner(array)
        if id(owner) in skip or id(owner) in counted:
            return
        counted.add(id(owner))
        table[op] = table.get(op, 0) + owner.nbytes

    for node in _graph_nodes(output, "graph_bytes"):
        op = type(node.creator).__name__ if node.creator is not None else "input"
        if isinstance(node.data, np.ndarray):
            add(node.data, op)
        if node.creator is not None:
            for array in _arrays_of(node.creator):
                add(array, op)
    return table if by_op else sum(table.values())


def gpt_activation_bytes(config, batch, seq_len=None, float_bytes=4):
    """The bytes ``graph_bytes`` finds after ``GPT(config)(idx, targets)`` in training mode,
    by formula, term by term (dropout must be 0: dropout masks are not modelled). Per token
    and block, in floats, with biases: 36 d + H T + 2 (``FusedAttention`` keeps the softmax
    weights) or 36 d + H + 2 (its streaming path, T^2 > 256^2, which keeps no T x T array,
    only the log-sum-exp); 25 d instead of 36 d without
    biases (no bias-add outputs). Every intermediate is kept, because each Function holds its
    inputs: that is why it is far above the 2 d-ish a fused implementation needs.

    Returns {"blocks", "embeddings", "final_norm", "logits_and_loss", "token_ids",
    "total"} in bytes."""
    L, d, V, T, H, bias, dropout = _dims(config, "gpt_activation_bytes")
    if dropout:
        raise TinyLMError(f"gpt_activation_bytes: the formula is for dropout=0 (dropout masks "
                          f"are not modelled), got dropout={dropout}")
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise TinyLMError(f"gpt_activation_bytes: batch must be a positive integer, got "
                          f"{batch!r}")
    T = _seq_len(seq_len, T, "gpt_activation_bytes")
    from .functional import STREAMING_MIN_SCORES
    streaming = T * T > STREAMING_MIN_SCORES
    tokens, f = batch * T, float_bytes
    # floats per token and block, with biases (the "+b" outputs go without them: 11 d):
    #   ln_1: x_hat d, 1/std 1, x_hat*w d, +b d                          3 d + 1
    #   c_attn: q, k, v each x W_i^T d and +b_i d (W_i a row block)     6 d
    #   FusedAttention: the softmax weights, H T                         H T
    #     (streaming: only the log-sum-exp, H)
    #   weights @ V d, heads merged (a copy) d, c_proj d, +b d, residual d    5 d
    #   ln_2: as ln_1                                                    3 d + 1
    #   c_fc 4d, +b 4d, GELU's Phi(x) 4d and its output 4d               16 d
    #   mlp.c_proj d, +b d, residual d                                   3 d
    per_token = (36 if bias else 25) * d + 2 + (H if streaming else H * T)
    parts = {
        "blocks": L * tokens * per_token * f,
        # wte(idx) per token, wpe(pos) once per position, their sum per token
        "embeddings": (2 * tokens * d + T * d) * f,
        "final_norm": tokens * ((3 if bias else 2) * d + 1) * f,
        # logits (V per token), the log-sum-exp (1 per token), the loss
        "logits_and_loss": (tokens * (V + 1) + 1) * f,
        # int64 ids and positions, int64 targets, the boolean "not ignored" mask
        "token_ids": 8 * (2 * tokens + T) + tokens,
    }
    parts["total"] = sum(parts.values())
    return parts


def training_memory_bytes(num_params, optimizer="adam", mixed_precision=False):
    """Bytes of the state training keeps per model, besides activations: {"weights",
    "gradients", "optimizer", "total"}. float32: 4 N + 4 N + (8 N for Adam's two moments,
    4 N for momentum SGD, 0 for plain SGD). ``mixed_precision``: 16-bit weights and gradients
    (2 N + 2 N) plus a float32 master copy inside the optimizer state (4 N), the 16 N bytes
    of Rajbhandari et al. (ZeRO, 2020) for Adam."""
    if not isinstance(num_params, (int, np.integer)) or num_params < 0:
        raise TinyLMError(f"training_memory_bytes: num_params must be an integer >= 0, got "
                          f"{num_params!r}")
    moments = {"adam": 2, "adamw": 2, "momentum": 1, "sgd": 0}
    if optimizer not in moments:
        raise TinyLMError(f"training_memory_bytes: optimizer must be one of {sorted(moments)}, "
                          f"got {optimizer!r}")
    N = int(num_params)
    w = 2 if mixed_precision else 4
    parts = {"weights": w * N, "gradients": w * N,
             "optimizer": 4 * N * moments[optimizer] + (4 * N if mixed_precision else 0)}
    parts["total"] = sum(parts.values())
    return parts


def optimizer_state_bytes(optimizer):
    """Bytes of the arrays an optimiser holds (``optimizer.state``), measured."""
    state = getattr(optimizer, "state", None)
    if not isinstance(state, dict):
        raise TinyLMError(f"optimizer_state_bytes: expected a tinylm optimiser (with .state), "
                          f"got {type(optimizer).__name__}")
    return sum(v.nbytes for s in state.values() for v in s.values() if hasattr(v, "nbytes"))


# --- the power law -------------------------------------------------------------------------
@dataclass
class PowerLaw:
    """``L(N) = a N^-alpha + c``; ``r2``: the share of the variance of log L it explains."""
    a: float
    alpha: float
    c: float = 0.0
    r2: float = float("nan")

    def __call__(self, n):
        return self.a * np.asarray(n, dtype=np.float64) ** -self.alpha + self.c


def _log_line(n, y):
    """Least squares of log y = log a - alpha log n: (a, alpha)."""
    slope, intercept = np.polyfit(np.log(n), np.log(y), 1)
    return float(np.exp(intercept)), float(-slope)


def _r2(law, n, loss):
    resid = np.log(loss) - np.log(law(n))
    return float(1 - resid @ resid / np.sum((np.log(loss) - np.log(loss).mean()) ** 2))


def fit_power_law(n, loss, offset=False, grid=2000):
    """Fit ``L(N) = a N^-alpha`` by least squares on log axes (a straight line through
    (log N, log L)). With ``offset``, also an irreducible loss c >= 0: for each c on a grid in
    [0, min L) the line is fitted to log(L - c), and the c whose curve is closest to the data
    in log L (squared error) wins. Returns a ``PowerLaw``."""
    n, loss = np.asarray(n, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    if n.ndim != 1 or n.shape != loss.shape:
        raise ShapeError(f"fit_power_law: n and loss must be 1-D of the same length, got "
                         f"shapes {n.shape} and {loss.shape}")
    need = 4 if offset else 2
    if n.size < need:
        raise TinyLMError(f"fit_power_law: need at least {need} points "
                          f"{'with an offset ' if offset else ''}, got {n.size}")
    if not (np.all(n > 0) and np.all(loss > 0) and np.all(np.isfinite(loss))):
        raise TinyLMError("fit_power_law: n and loss must be positive and finite")
    if np.unique(n).size < 2:
        raise TinyLMError("fit_power_law: need at least two different sizes n")
    if not offset:
        law = PowerLaw(*_log_line(n, loss))
    else:
        best = None
        for c in np.linspace(0.0, loss.min(), grid, endpoint=False):
            law_c = PowerLaw(*_log_line(n, loss - c), c=float(c))
            err = np.sum((np.log(loss) - np.log(law_c(n))) ** 2)
            if best is None or err < best[0]:
                best = (err, law_c)
        law = best[1]
    law.r2 = _r2(law, n, loss)
    return law

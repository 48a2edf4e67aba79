"""Optimisers, gradient clipping and learning-rate schedules, with PyTorch's exact rules.

Training repeats three things: compute the loss, ``loss.backward()`` to fill every
parameter's ``.grad``, then let an optimiser move each parameter against its gradient.
The simplest rule is the plain gradient step (C8)::

    w <- w - alpha * dL/dw

Adam and RMSprop (C15, D3) keep running averages of the gradient and of its square, per
coordinate, and divide by the latter so that every coordinate moves by about ``lr``.

Everything here follows ``torch.optim`` step for step (same order of operations, same
first-step special cases), so the same seed and data give the same trajectory as PyTorch
to rounding error. Usage, as in PyTorch and nanoGPT::

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = AdamW([{"params": decay, "weight_decay": 0.1},
                 {"params": no_decay, "weight_decay": 0.0}], lr=6e-4, betas=(0.9, 0.95))
    sched = WarmupCosineLR(opt, warmup_steps=100, decay_steps=5000, min_lr=6e-5)
    for step in range(5000):
        loss = ...; opt.zero_grad(); loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step()

A parameter is any object with ``.data`` (a NumPy or CuPy array, updated IN PLACE so that
views and other references stay valid) and ``.grad`` (an array of the same shape, or None:
such a parameter is skipped). Arrays are created with ``get_array_module`` so the same code
runs on the GPU.
"""
import math

import numpy as np

from .backend import get_array_module, is_array, to_numpy
from .errors import ShapeError, TinyLMError
from .kernels import kernel

__all__ = [
    "Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "decay_groups", "clip_grad_norm_",
    "clip_grad_value_",
    "LRScheduler", "StepLR", "CosineAnnealingLR", "LinearLR", "LambdaLR", "WarmupCosineLR",
    "warmup_cosine_lr",
]


# ======================================================================================
# Small checks shared by the optimisers
# ======================================================================================

def _is_parameter(x):
    """A parameter is anything holding an array in ``.data`` (a NumPy array also has a
    ``.data`` attribute, a raw buffer, so arrays themselves are rejected)."""
    return not is_array(x) and is_array(getattr(x, "data", None))


def _grad_array(p):
    """``p.grad`` as an array (a Tensor-valued grad is unwrapped), checked against ``p``."""
    g = p.grad
    if not is_array(g):
        g = getattr(g, "data", g)
    if not is_array(g):
        raise TinyLMError(f"optimizer: a parameter's .grad must be an array or None, "
                          f"got {type(p.grad).__name__}")
    if g.shape != p.data.shape:
        raise ShapeError(f"optimizer: parameter of shape {p.data.shape} has a gradient of "
                         f"shape {g.shape}")
    return g


def _check_nonneg(name, key, value):
    if not isinstance(value, (int, float, np.number)) or not value >= 0:  # also catches NaN
        raise TinyLMError(f"{name}: {key} must be a number >= 0, got {value!r}")


def _check_betas(name, betas):
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise TinyLMError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    for i, b in enumerate((b1, b2)):
        if not isinstance(b, (int, float, np.number)) or not 0.0 <= b < 1.0:
            raise TinyLMError(f"{name}: betas[{i}] must be in [0, 1), got {b!r}")


# ======================================================================================
# The base class: parameter groups, state, zero_grad, state_dict
# ======================================================================================

class Optimizer:
    """Base class: holds ``param_groups`` and per-parameter ``state``; subclasses give the
    update rule in ``_update``.

    ``params`` is an iterable of parameters, or a list of dicts each with a ``"params"``
    entry and any hyperparameters to override for that group (missing keys come from
    ``defaults``), e.g. weight decay on matrices only, as nanoGPT does.

    ``state`` maps ``id(parameter)`` to a dict of arrays (moment estimates, momentum
    buffers) and the step count; it is filled lazily on a parameter's first update.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        name = type(self).__name__
        if _is_parameter(params) or isinstance(params, dict):
            raise TinyLMError(f"{name}: params must be an iterable of parameters or of dicts, "
                              f"got a single {type(params).__name__}")
        if isinstance(params, (set, frozenset)):
            # A set has no stable order, so state_dict indices would not be repeatable.
            raise TinyLMError(f"{name}: params must be an ordered iterable (a list), got a set")
        try:
            params = list(params)
        except TypeError:
            raise TinyLMError(f"{name}: params must be an iterable of parameters or of dicts, "
                              f"got {type(params).__name__}") from None
        if not params:
            raise TinyLMError(f"{name}: got an empty parameter list; expected at least one "
                              f"parameter (is the model empty, or the generator used up?)")
        n_dicts = sum(isinstance(p, dict) for p in params)
        if n_dicts == 0:
            params = [{"params": params}]
        elif n_dicts != len(params):
            raise TinyLMError(f"{name}: params must be all parameters or all dicts (parameter "
                              f"groups), got a mix of {n_dicts} dicts and "
                              f"{len(params) - n_dicts} other items")
        for group in params:
            self.add_param_group(group)

    # --- groups --------------------------------------------------------------------------
    def add_param_group(self, group):
        """Add a dict ``{"params": [...], "lr": ..., ...}``; missing keys come from defaults."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TinyLMError(f"{name}.add_param_group: expected a dict with a 'params' entry, "
                              f"got {type(group).__name__}")
        group = dict(group)
        params = group["params"]
        if _is_parameter(params):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TinyLMError(f"{name}: a group's params must be an ordered iterable (a list), "
                              f"got a set")
        else:
            params = list(params)
        for i, p in enumerate(params):
            if not _is_parameter(p):
                raise TinyLMError(f"{name}: can only optimise parameters (objects with an array "
                                  f"in .data), got {type(p).__name__} at position {i} of group "
                                  f"{len(self.param_groups)}")
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            raise TinyLMError(f"{name}: a parameter appears more than once in group "
                              f"{len(self.param_groups)}; expected each parameter once")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if seen.intersection(ids):
            raise TinyLMError(f"{name}: a parameter appears in two parameter groups; expected "
                              f"each parameter in exactly one group")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Validate one group's hyperparameters (subclasses extend this)."""
        _check_nonneg(type(self).__name__, "lr", group["lr"])

    # --- the training-loop methods -------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Forget the gradients: ``p.grad = None`` (or fill with zeros in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    _grad_array(p).fill(0)

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure`` (optional) re-computes
        the loss and returns it, as in PyTorch; its value is returned."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = _grad_array(p)
                state = self.state.setdefault(id(p), {"step": 0})
                state["step"] += 1
                self._update(p, grad, state, group)
        return loss

    def _update(self, p, grad, state, group):
        """Change ``p.data`` in place, given its gradient, its state and its group."""
        raise NotImplementedError  # abstract: each optimiser gives its rule

    # --- saving and resuming -------------------------------------------------------------
    def _indexed_params(self):
        """Parameters numbered across groups in order, as state_dict numbers them."""
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """A plain dict (NumPy arrays, numbers, lists) that ``load_state_dict`` restores.

        ``{"state": {index: {"step": int, name: array, ...}}, "param_groups": [{..., "params":
        [index, ...]}]}``, where index numbers parameters across groups in order (PyTorch's
        layout). Arrays are copies on the CPU, so later steps do not change the snapshot.
        """
        index = {id(p): i for i, p in enumerate(self._indexed_params())}
        groups = []
        for group in self.param_groups:
            g = {k: v for k, v in group.items() if k != "params"}
            g["params"] = [index[id(p)] for p in group["params"]]
            groups.append(g)
        state = {}
        for pid, s in self.state.items():
            state[index[pid]] = {k: np.array(to_numpy(v)) if is_array(v) else v
                                 for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by ``state_dict`` (same parameter layout)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict \
                or "param_groups" not in state_dict:
            raise TinyLMError(f"{name}.load_state_dict: expected a dict with 'state' and "
                              f"'param_groups', got {type(state_dict).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise TinyLMError(f"{name}.load_state_dict: the saved state has {len(saved_groups)} "
                              f"parameter groups, this optimiser has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise TinyLMError(f"{name}.load_state_dict: group {i} has "
                                  f"{len(saved['params'])} parameters in the saved state and "
                                  f"{len(group['params'])} here")
        # Saved indices -> current parameters (the saved indices are normally 0, 1, 2, ...).
        by_index = {}
        for saved, group in zip(saved_groups, self.param_groups):
            by_index.update(zip(saved["params"], group["params"]))

        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            new = {k: v for k, v in saved.items() if k != "params"}
            if "betas" in new:
                new["betas"] = tuple(new["betas"])
            new["params"] = group["params"]
            new_groups.append(new)

        new_state = {}
        for idx, s in state_dict["state"].items():
            p = by_index.get(int(idx))
            if p is None:
                raise TinyLMError(f"{name}.load_state_dict: the saved state names parameter "
                                  f"{idx}, which is not in any saved group")
            xp = get_array_module(p.data)
            restored = {}
            for k, v in s.items():
                if is_array(v):
                    # Moments follow the parameter's dtype and device, like PyTorch.
                    dtype = p.data.dtype if v.dtype.kind == "f" else v.dtype
                    v = xp.array(to_numpy(v) if xp is np else v, dtype=dtype, copy=True)
                    if v.shape != p.data.shape:
                        raise ShapeError(f"{name}.load_state_dict: state {k!r} of parameter "
                                         f"{idx} has shape {v.shape}, the parameter "
                                         f"{p.data.shape}")
                elif k == "step":
                    v = int(v)
                restored[k] = v
            new_state[id(p)] = restored
        for group in new_groups:
            self._check_group(group)
        self.param_groups = new_groups
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"  group {i}: {len(group['params'])} params")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


# ======================================================================================
# The update rules
# ======================================================================================

class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (PyTorch's rule).

    With g = dL/dp (negated when ``maximize``), plus ``weight_decay * p`` (L2)::

        momentum == 0:   p <- p - lr * g                       (C8, the plain gradient step)
        momentum  > 0:   b <- g                                 on the first step
                         b <- momentum * b + (1 - dampening) * g  afterwards
                         d = g + momentum * b   if nesterov else   d = b
                         p <- p - lr * d

    Note PyTorch's first-step rule: the buffer starts as g itself, not (1 - dampening) g.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        for key in ("momentum", "dampening", "weight_decay"):
            _check_nonneg("SGD", key, group[key])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise TinyLMError(f"SGD: nesterov=True needs momentum > 0 and dampening == 0, got "
                              f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, p, grad, state, group):
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data        # a new array: p.grad stays untouched
        momentum = group["momentum"]
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer 2011): per-coordinate steps shrinking with the sum of
    all past squared gradients (C16, "better optimisers"; PyTorch's rule).

    With g = dL/dp (+ ``weight_decay * p``), at step t = 1, 2, ...::

        s <- s + g^2                              (s starts at initial_accumulator_value)
        lr_t = lr / (1 + (t - 1) * lr_decay)
        p <- p - lr_t * g / (sqrt(s) + eps)

    A coordinate that rarely gets a gradient (a rare word's embedding) keeps a small s and
    so a large step; one that always gets large gradients is slowed down. s never forgets,
    so the steps only shrink: RMSprop replaces the sum by a running mean for that reason.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        for key in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            _check_nonneg("Adagrad", key, group[key])

    def _update(self, p, grad, state, group):
        xp = get_array_module(p.data)
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data
        if "sum" not in state:
            state["sum"] = xp.full_like(p.data, group["initial_accumulator_value"])
        state["sum"] += g * g
        lr_t = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        p.data -= lr_t * (g / (xp.sqrt(state["sum"]) + group["eps"]))


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running root-mean-square of recent gradients (D3).

    With g = dL/dp (+ ``weight_decay * p``)::

        s <- alpha * s + (1 - alpha) * g^2                 (mean square, starts at 0)
        centered: a <- alpha * a + (1 - alpha) * g;  r = sqrt(s - a^2) + eps
        else:                                        r = sqrt(s) + eps
        momentum > 0:  b <- momentum * b + g / r;  p <- p - lr * b
        else:          p <- p - lr * g / r

    There is no bias correction, so early steps are larger than lr (as in PyTorch).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        for key in ("alpha", "eps", "weight_decay", "momentum"):
            _check_nonneg("RMSprop", key, group[key])
        if group["alpha"] > 1:      # s <- alpha s + (1 - alpha) g^2 could turn negative: nan
            raise TinyLMError(f"RMSprop: alpha must be in [0, 1], got {group['alpha']!r}")

    def _update(self, p, grad, state, group):
        xp = get_array_module(p.data)
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data
        if "square_avg" not in state:
            state["square_avg"] = xp.zeros_like(p.data)
            if group["momentum"] > 0:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.data)
        alpha = group["alpha"]
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * g * g
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg *= alpha
            grad_avg += (1 - alpha) * g
            # The variance estimate E[g^2] - E[g]^2 instead of the raw second moment.
            avg = xp.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = xp.sqrt(square_avg)
        avg += group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += g / avg
            p.data -= group["lr"] * buf
        else:
            p.data -= group["lr"] * (g / avg)


class Adam(Optimizer):
    """Adam (Kingma & Ba): momentum on the gradient, scaled per coordinate by its RMS (C15).

    With g = dL/dp, plus ``weight_decay * p`` (L2 on the gradient; see AdamW for the
    decoupled kind), at step t = 1, 2, ...::

        m_t = b1 m + (1 - b1) g                 v_t = b2 v + (1 - b2) g^2
        m_hat = m_t / (1 - b1^t)                v_hat = v_t / (1 - b2^t)
        (amsgrad: v_max = max(v_max, v_t) and v_hat uses v_max instead of v_t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    The bias corrections undo the zero start of m and v, so the first step moves every
    coordinate by almost exactly lr (m_hat / sqrt(v_hat) = g / |g| = +-1).
    """

    _decoupled = False   # AdamW sets this: decay the weights directly, not through g

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        name = type(self).__name__
        super()._check_group(group)
        _check_betas(name, group["betas"])
        for key in ("eps", "weight_decay"):
            _check_nonneg(name, key, group[key])

    def _update(self, p, grad, state, group):
        xp = get_array_module(p.data)
        lr, (beta1, beta2), t = group["lr"], group["betas"], state["step"]
        g = -grad if group["maximize"] else grad
        if "exp_avg" not in state:
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        arrays = (p.data, g.astype(p.data.dtype, copy=False), state["exp_avg"],
                  state["exp_avg_sq"])
        kernel("adam_step", *arrays)(*arrays, lr, beta1, beta2, group["eps"], t,
                                     group["weight_decay"], self._decoupled,
                                     v_max=state.get("max_exp_avg_sq"))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), the LLM default.

    Before the Adam step (which then sees the raw gradient g)::

        p <- p - lr * weight_decay * p
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)       (m_hat, v_hat as in Adam)

    Decay thus shrinks every weight at the same rate instead of being rescaled by 1/sqrt(v).
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)


# ======================================================================================
# Gradient clipping
# ======================================================================================

def _grads_of(parameters):
    """The gradient arrays of ``parameters`` (one parameter or an iterable), Nones skipped."""
    if _is_parameter(parameters):
        parameters = [parameters]
    return [_grad_array(p) for p in parameters if p.grad is not None]


def decay_groups(parameters, weight_decay):
    """nanoGPT's two parameter groups: ``weight_decay`` on the matrices (2-D and more: linear
    weights, embeddings), none on vectors (biases, LayerNorm gains). Pass the result to any
    optimiser in place of ``model.parameters()``."""
    params = list(parameters)
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    total_norm=None):
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    total = || (||g_1||_q, ||g_2||_q, ...) ||_q   (= the q-norm of all gradients as one vector;
                                                    q = inf: the largest |g| anywhere)
    if max_norm / (total + 1e-6) < 1:  every g <- g * max_norm / (total + 1e-6)

    Returns the total norm before clipping (a Python float), worth logging: spikes show
    instabilities. The 1e-6 is PyTorch's, so a clipped norm lands just under max_norm.
    ``total_norm``: the joint norm when it is already known, e.g. summed over the stages of
    a pipeline that each hold part of the gradients (``tinylm.parallel``); only the scaling
    is done here then.
    """
    norm_type = float(norm_type)
    if not (norm_type > 0):
        raise TinyLMError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
    if not (float(max_norm) >= 0):
        raise TinyLMError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    grads = _grads_of(parameters)
    if not grads:
        return 0.0
    if total_norm is not None:
        return _scale_to_norm(grads, max_norm, float(total_norm))
    xp = get_array_module(grads[0])
    if norm_type == math.inf:
        norms = [xp.max(xp.abs(g)) if g.size else xp.zeros((), g.dtype) for g in grads]
        total = xp.max(xp.stack(norms))
    elif norm_type == 2.0:
        norms = [xp.sqrt(xp.sum(g * g)) for g in grads]
        total = xp.sqrt(xp.sum(xp.stack(norms) ** 2))
    else:
        norms = [xp.sum(xp.abs(g) ** norm_type) ** (1.0 / norm_type) for g in grads]
        total = xp.sum(xp.stack(norms) ** norm_type) ** (1.0 / norm_type)
    total = float(total)   # one device sync for all parameters
    if error_if_nonfinite and not math.isfinite(total):
        raise TinyLMError(f"clip_grad_norm_: the total {norm_type}-norm of the gradients is "
                          f"{total}, not finite, so clipping cannot fix it; expected finite "
                          f"gradients (or pass error_if_nonfinite=False)")
    return _scale_to_norm(grads, max_norm, total)


def _scale_to_norm(grads, max_norm, total):
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:    # also when total is NaN, which then spreads NaN as PyTorch does
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry into [-clip_value, clip_value], in place."""
    if not (float(clip_value) >= 0):
        raise TinyLMError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for g in _grads_of(parameters):
        xp = get_array_module(g)
        xp.clip(g, -clip_value, clip_value, out=g)


# ======================================================================================
# Learning-rate schedules
# ======================================================================================

def warmup_cosine_lr(step, *, max_lr, min_lr, warmup_steps, decay_steps):
    """nanoGPT's schedule: linear warmup to ``max_lr``, cosine decay to ``min_lr``, then flat.

    step < warmup_steps:           lr = max_lr * (step + 1) / warmup_steps
    warmup_steps <= step < decay:  r = (step - warmup_steps) / (decay_steps - warmup_steps)
                                   lr = min_lr + (max_lr - min_lr) * (1 + cos(pi r)) / 2
    step >= decay_steps:           lr = min_lr

    ``decay_steps`` counts from step 0 (warmup included), like nanoGPT's lr_decay_iters.
    The ``+ 1`` means step 0 already trains (at max_lr / warmup_steps) and the last warmup
    step reaches max_lr.
    """
    if warmup_steps < 0 or decay_steps < warmup_steps:
        raise TinyLMError(f"warmup_cosine_lr: expected 0 <= warmup_steps <= decay_steps, got "
                          f"warmup_steps={warmup_steps}, decay_steps={decay_steps}")
    if step < 0:
        raise TinyLMError(f"warmup_cosine_lr: step must be >= 0, got {step}")
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= decay_steps:
        return float(min_lr)
    ratio = (step - warmup_steps) / (decay_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * ratio))


class LRScheduler:
    """Base class: sets every group's ``lr`` from its initial lr and the step count.

    As in PyTorch, making the scheduler already applies the lr of epoch 0, and each
    ``step()`` (called after ``optimizer.step()``) moves to the next one. Subclasses give
    the closed form ``_lr(base_lr, epoch, group_index)``.
    """

    def __init__(self, optimizer, last_epoch=-1):
        name = type(self).__name__
        if not isinstance(getattr(optimizer, "param_groups", None), list):
            raise TinyLMError(f"{name}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                # setdefault: a second scheduler on the same optimiser keeps the true start.
                group.setdefault("initial_lr", group["lr"])
        else:
            missing = [i for i, g in enumerate(optimizer.param_groups) if "initial_lr" not in g]
            if missing:
                raise TinyLMError(f"{name}: resuming at last_epoch={last_epoch} needs "
                                  f"'initial_lr' in every param group; groups {missing} lack it")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def _lr(self, base_lr, epoch, i):
        raise NotImplementedError  # abstract: each schedule gives its formula

    def get_lr(self):
        """The lrs for the current ``last_epoch``, one per group."""
        return [self._lr(base, self.last_epoch, i) for i, base in enumerate(self.base_lrs)]

    def step(self):
        self.last_epoch += 1
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self):
        """The lrs set by the latest ``step()`` (or by construction)."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimiser and functions: counters, base lrs, settings."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()
                if k not in ("optimizer", "lr_lambdas") and not callable(v)}

    def load_state_dict(self, state_dict):
        self.__dict__.update({k: (list(v) if isinstance(v, list) else v)
                              for k, v in state_dict.items()})


def _check_positive_int(name, key, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise TinyLMError(f"{name}: {key} must be a positive integer, got {value!r}")


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size): divide by 1/gamma every step_size steps."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _check_positive_int("StepLR", "step_size", step_size)
        _check_nonneg("StepLR", "gamma", gamma)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, epoch, i):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2.

    Half a cosine from base_lr down to eta_min over T_max steps (it rises again after, as
    PyTorch's does: keep stepping past T_max only on purpose).
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _check_positive_int("CosineAnnealingLR", "T_max", T_max)
        _check_nonneg("CosineAnnealingLR", "eta_min", eta_min)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, epoch, i):
        cos = math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + cos) / 2


class LinearLR(LRScheduler):
    """lr = base_lr * (start + (end - start) * min(epoch, total_iters) / total_iters).

    A linear ramp of the factor from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps, then flat (PyTorch's default: warm up from base_lr / 3 in 5).
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if not (isinstance(start_factor, (int, float)) and 0 < start_factor <= 1):
            raise TinyLMError(f"LinearLR: start_factor must be in (0, 1], got {start_factor!r}")
        if not (isinstance(end_factor, (int, float)) and 0 <= end_factor <= 1):
            raise TinyLMError(f"LinearLR: end_factor must be in [0, 1], got {end_factor!r}")
        _check_positive_int("LinearLR", "total_iters", total_iters)
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, epoch, i):
        frac = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch); ``lr_lambda`` is one function or one per group.

    The functions are not saved by ``state_dict`` (they are code, not numbers): pass the
    same ones again when resuming.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        n = len(getattr(optimizer, "param_groups", []))
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * n
        else:
            try:
                lr_lambdas = list(lr_lambda)
            except TypeError:
                lr_lambdas = [lr_lambda]        # not a function, not a list: the error below
            if len(lr_lambdas) != n or not all(callable(f) for f in lr_lambdas):
                raise TinyLMError(f"LambdaLR: expected one function or a list of {n} functions "
                                  f"(one per param group), got {lr_lambda!r}")
            self.lr_lambdas = lr_lambdas
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, epoch, i):
        return base_lr * self.lr_lambdas[i](epoch)


class WarmupCosineLR(LRScheduler):
    """``warmup_cosine_lr`` as a scheduler: each group's initial lr is its max_lr.

    ``min_lr`` is one number or a list with one per group.
    """

    def __init__(self, optimizer, warmup_steps, decay_steps, min_lr=0.0, last_epoch=-1):
        if not (isinstance(warmup_steps, (int, np.integer)) and 0 <= warmup_steps <= decay_steps):
            raise TinyLMError(f"WarmupCosineLR: expected integers 0 <= warmup_steps <= "
                              f"decay_steps, got warmup_steps={warmup_steps!r}, "
                              f"decay_steps={decay_steps!r}")
        n = len(getattr(optimizer, "param_groups", []))
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        if len(min_lrs) != n:
            raise TinyLMError(f"WarmupCosineLR: expected one min_lr or {n} (one per group), "
                              f"got {len(min_lrs)}")
        for m in min_lrs:
            _check_nonneg("WarmupCosineLR", "min_lr", m)
        self.warmup_steps, self.decay_steps, self.min_lrs = warmup_steps, decay_steps, min_lrs
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, epoch, i):
        return warmup_cosine_lr(epoch, max_lr=base_lr, min_lr=self.min_lrs[i],
                                warmup_steps=self.warmup_steps, decay_steps=self.decay_steps)

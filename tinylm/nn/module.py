"""``Module``, ``Parameter`` and ``Sequential``: the containers every layer is built from.

Names and layouts follow PyTorch (``weight`` of Linear is (out_features, in_features), a child
``encoder`` with parameter ``bias`` is ``encoder.bias`` in ``state_dict()``), so weights move
between tinylm and PyTorch with ``load_state_dict({k: v.numpy() for k, v in ...})``.
"""
import functools
from collections import OrderedDict

import numpy as np

from .. import backend as _backend
from ..backend import (DEFAULT_DTYPE, DeviceError, as_array, check_device, get_array_module,
                       is_array, to_device, to_numpy)
from ..errors import DTypeError, ShapeError, TinyLMError
from ..tensor import Tensor


def _array_of(value):
    """The array inside a Parameter, or a buffer array itself."""
    return value.data if isinstance(value, Tensor) else value


class Parameter(Tensor):
    """A Tensor that is a trainable weight: ``requires_grad`` is on, and a Module that holds
    it as an attribute lists it in ``parameters()``."""

    def __init__(self, data, requires_grad=True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


def make_rng(seed):
    """A ``numpy.random.Generator`` from an int seed, a Generator (used as is) or None
    (fresh entropy: pass a seed whenever the result must be repeatable)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


class Module:
    """Base class of layers and models.

    Assigning a ``Parameter`` or a ``Module`` to an attribute registers it; ``forward`` holds
    the computation and ``module(x)`` calls it.
    """

    def __init_subclass__(cls, **kwargs):
        """Wrap each subclass's ``__init__`` so that a module built while the default device
        is a GPU (``--device cuda``, ``TINYLM_DEVICE=cuda``) ends up there whole, even when
        its ``__init__`` (re)initialises weights with NumPy, as ``GPT`` does. On the CPU the
        wrapper costs one test of a bool per module built."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self, *args, **kw):
            init(self, *args, **kw)
            # only the most derived class's __init__ moves: once, after all of them ran
            if _backend._default_on_gpu and type(self).__init__ is __init__:
                self.to(_backend.default_device())
        cls.__init__ = __init__

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise TinyLMError(f"{type(self).__name__}: call super().__init__() in __init__ "
                              f"before assigning attributes")
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """State that is saved in ``state_dict()`` but not trained (running statistics,
        fixed positional tables...)."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")  # abstract

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --- walking the tree ----------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return iter(self._modules.values())

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix=""):
        seen = set()
        for mod_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen:   # a shared (tied) weight is listed once
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        for mod_name, module in self.named_modules():
            for name, b in module._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    # --- modes and gradients -------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, target=None, *, device=None, dtype=None):
        """Move every parameter and buffer to a device, or cast the floating ones to a dtype,
        in place; returns the module. ``model.to("cuda")``, ``model.to("cpu")``,
        ``model.to(np.float64)`` (e.g. for gradient checks), or both by keyword.

        Move a model before making its optimiser: the optimiser's state (Adam's moments) is
        made on the device the parameters are on when it first steps. A dtype cast drops the
        gradients; a move takes them along."""
        if target is not None:
            if isinstance(target, str) and not _is_dtype_name(target):
                device = target       # "cpu", "cuda", or neither: check_device names them
            else:
                dtype = target
        if device is None and dtype is None:
            raise DeviceError(f"{type(self).__name__}.to: expected a device ('cpu' or "
                              f"'cuda') or a dtype, got nothing")
        if device is not None:
            device = check_device(device, f"{type(self).__name__}.to")
            for p in self.parameters():
                p.data = to_device(p.data, device)
                p.grad = None if p.grad is None else to_device(p.grad, device)
            for m in self.modules():
                for name, b in list(m._buffers.items()):
                    if is_array(b):
                        m.register_buffer(name, to_device(b, device))
        if dtype is not None:
            for p in self.parameters():
                p.data = p.data.astype(dtype)
                p.grad = None
            for m in self.modules():
                for name, b in list(m._buffers.items()):
                    if b is not None and b.dtype.kind == "f":
                        m.register_buffer(name, b.astype(dtype))
        return self

    # --- saving and loading --------------------------------------------------------
    def _state_entries(self):
        """(dotted name, owning module, attribute) for every parameter and buffer; a tied
        weight appears under each of its names, as in PyTorch's ``state_dict``."""
        for mod_name, mod in self.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            for key in mod._parameters:
                yield prefix + key, mod, key
            for key, b in mod._buffers.items():
                if b is not None:      # a buffer set to None is not saved (nor expected)
                    yield prefix + key, mod, key

    def state_dict(self):
        """Every parameter and buffer by dotted name, as NumPy arrays (copies)."""
        return OrderedDict((name, to_numpy(_array_of(getattr(mod, key)), copy=True))
                           for name, mod, key in self._state_entries())

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` (name -> array-like: NumPy, or anything with
        ``.numpy()`` such as a torch tensor) into this module's parameters and buffers.

        Names and shapes are all checked before anything is assigned, so a bad state
        leaves the module as it was.
        """
        entries = {name: (mod, key) for name, mod, key in self._state_entries()}
        missing = [k for k in entries if k not in state]
        unexpected = [k for k in state if k not in entries]
        if strict and (missing or unexpected):
            raise TinyLMError(f"load_state_dict: missing keys {missing}, "
                              f"unexpected keys {unexpected}")
        staged = []
        for name, value in state.items():
            if name not in entries:
                continue
            mod, key = entries[name]
            current = _array_of(getattr(mod, key))
            # np.array copies: the module must not share memory with the caller's arrays
            # (a torch tensor's .numpy() is a view of it)
            value = np.array(value.numpy() if hasattr(value, "numpy") else value)
            if value.dtype.kind not in "biuf" or (value.dtype.kind == "f"
                                                  and current.dtype.kind != "f"):
                raise DTypeError(f"load_state_dict: {name} has dtype {value.dtype} in the "
                                 f"state, expected numbers that fit {current.dtype}")
            if value.shape != current.shape:
                raise ShapeError(f"load_state_dict: {name} has shape {value.shape} in the "
                                 f"state, expected {current.shape}")
            staged.append((mod, key, as_array(value, current.dtype, get_array_module(current))))
        for mod, key, array in staged:
            if key in mod._parameters:
                mod._parameters[key].data = array
            else:
                mod.register_buffer(key, array)

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"

    def extra_repr(self):
        return ""


class Sequential(Module):
    """Modules applied one after another; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TinyLMError(f"Sequential: argument {i} must be a Module, "
                                  f"got {type(m).__name__}")
            setattr(self, str(i), m)

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        children = list(self._modules.values())
        return Sequential(*children[i]) if isinstance(i, slice) else children[i]

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(Module):
    """A list of modules whose parameters are registered under "0", "1", ... (PyTorch's
    ``nn.ModuleList``: ``h.0.attn.c_attn.weight``); it has no forward of its own."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TinyLMError(f"ModuleList: items must be Modules, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        children = list(self._modules.values())
        return ModuleList(children[i]) if isinstance(i, slice) else children[i]

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """Named child modules (PyTorch's ``nn.ModuleDict``): ``ModuleDict(dict(wte=..., h=...))``
    registers ``wte.weight``, ``h.0...``; read them as ``d["wte"]`` or ``d.wte``."""

    def __init__(self, modules=None):
        super().__init__()
        for name, m in dict(modules or {}).items():
            self[name] = m

    def __setitem__(self, name, module):
        if not isinstance(module, Module):
            raise TinyLMError(f"ModuleDict: {name!r} must be a Module, got "
                              f"{type(module).__name__}")
        setattr(self, name, module)

    def __getitem__(self, name):
        if name not in self._modules:
            raise KeyError(f"ModuleDict: no module {name!r} (has {list(self._modules)})")
        return self._modules[name]

    def __contains__(self, name):
        return name in self._modules

    def __len__(self):
        return len(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()


def _is_dtype_name(name):
    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


def uniform(rng, shape, bound, dtype=DEFAULT_DTYPE):
    """U(-bound, bound) samples as a Parameter (PyTorch's default init for Linear, RNNs)."""
    return Parameter(rng.uniform(-bound, bound, size=shape).astype(dtype))

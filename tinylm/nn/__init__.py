"""Layers and models are ``Module``s holding ``Parameter``s (PyTorch names and layouts)."""
from .layers import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from .module import Module, Parameter, Sequential, make_rng

__all__ = ["Module", "Parameter", "Sequential", "make_rng", "Linear", "Embedding", "LayerNorm",
           "Dropout", "ReLU", "GELU", "Tanh", "Sigmoid"]

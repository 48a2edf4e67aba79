"""Layers and models are ``Module``s holding ``Parameter``s (PyTorch names and layouts)."""
from .attention import KVCache, MultiheadAttention
from .layers import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential, make_rng
from .positional import PositionalEncoding
from .recurrent import GRU, LSTM, RNN, DocLSTM, DocLSTMCell
from .transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                          TransformerEncoder, TransformerEncoderLayer)

__all__ = ["Module", "ModuleList", "ModuleDict", "Parameter", "Sequential", "make_rng", "Linear", "Embedding", "LayerNorm",
           "Dropout", "ReLU", "GELU", "Tanh", "Sigmoid", "MultiheadAttention", "KVCache",
           "PositionalEncoding", "TransformerEncoderLayer", "TransformerDecoderLayer",
           "TransformerEncoder", "TransformerDecoder", "Transformer", "RNN", "LSTM", "GRU",
           "DocLSTM", "DocLSTMCell"]

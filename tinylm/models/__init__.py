"""Models built from tinylm layers: language models, classifiers, a translator."""
from .classifiers import LSTMClassifier, TransformerClassifier
from .gpt import GPT, GPTConfig
from .rnnlm import RNNLM

__all__ = ["GPT", "GPTConfig", "RNNLM", "LSTMClassifier", "TransformerClassifier"]

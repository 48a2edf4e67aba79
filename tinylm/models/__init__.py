"""Models built from tinylm layers: language models, classifiers, a translator."""
from .gpt import GPT, GPTConfig
from .rnnlm import RNNLM

__all__ = ["GPT", "GPTConfig", "RNNLM"]

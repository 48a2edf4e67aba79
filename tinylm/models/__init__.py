"""Models built from tinylm layers: language models, classifiers, a translator."""
from .gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig"]

"""Turning raw text into numbers: cleaning, tokenizers, Vocab, corpora, batching (chapter 04)."""
from .vocab import SPECIALS, Vocab

__all__ = ["Vocab", "SPECIALS"]

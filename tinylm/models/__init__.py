"""Models built from tinylm layers: language models, classifiers, a translator."""
from .classifiers import LSTMClassifier, TransformerClassifier
from .gpt import GPT, GPTConfig
from .rnnlm import RNNLM
from .seq2seq import Seq2SeqTransformer

__all__ = ["GPT", "GPTConfig", "RNNLM", "LSTMClassifier", "TransformerClassifier",
           "Seq2SeqTransformer"]

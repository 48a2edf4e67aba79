"""Word embeddings: word2vec (B2, C9), GloVe (B5, B6, C10) and the KeyedVectors they return."""
from .keyed_vectors import KeyedVectors, VocabularyError
from .word2vec import Word2Vec

__all__ = ["KeyedVectors", "VocabularyError", "Word2Vec"]

"""Word embeddings: word2vec (B2, C9), GloVe (B5, C10), the documents' count models (B6, C10
as written) and the KeyedVectors they return."""
from .glove import GloVe
from .keyed_vectors import KeyedVectors, VocabularyError
from .word2vec import Word2Vec

__all__ = ["KeyedVectors", "VocabularyError", "Word2Vec", "GloVe"]

"""Turning raw text into numbers: cleaning, tokenizers, Vocab, corpora, batching (chapter 04).

A2's preprocessing (clean -> tokenize -> embed) and B1's data pipeline (collect -> preprocess
-> ... ) in small modules:

* ``clean``: ``clean``, ``split_sentences``, ``word_tokenize``, ``sentences_from_text``;
  ``stopwords``: ``STOPWORDS``, tinylm's own English list;
* ``tokenizers``: ``CharTokenizer``, ``WordTokenizer``, ``BPETokenizer`` (one interface);
* ``vocab``: ``Vocab`` with ``min_count``, ``max_size`` (C14: 25,000) and counts;
* ``corpus``: ``load_text`` (any UTF-8 file or URL), the embedded default corpus
  (``default_text``, ``default_sentences``) and ``corpus_sentences``;
* ``batching``: ``lm_blocks`` (E2 step 2), ``LMBatches``, ``random_windows``, ``pad_sequences``,
  ``bucket_batches``, ``train_val_test_split`` (A4).
"""
from .batching import (LMBatches, bucket_batches, lm_blocks, pad_sequences, random_windows,
                       train_val_test_split)
from .clean import clean, sentences_from_text, split_sentences, word_tokenize
from .corpus import (cache_dir, corpus_sentences, default_corpus_info, default_sentences,
                     default_text, load_text)
from .stopwords import STOPWORDS
from .tokenizers import (BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer,
                         load_tokenizer)
from .vocab import SPECIALS, UnknownTokenError, Vocab

__all__ = ["Vocab", "SPECIALS", "UnknownTokenError", "STOPWORDS", "clean", "split_sentences",
           "word_tokenize",
           "sentences_from_text", "load_text", "default_text", "default_sentences",
           "default_corpus_info", "corpus_sentences", "cache_dir", "Tokenizer",
           "CharTokenizer", "WordTokenizer", "BPETokenizer", "load_tokenizer", "lm_blocks",
           "LMBatches", "random_windows", "pad_sequences", "bucket_batches", "train_val_test_split"]


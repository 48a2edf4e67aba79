"""Cleaning, sentence splitting and word tokenization (A2 step 1, tinylm.text.clean)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylm.errors import TinyLMError
from tinylm.text import STOPWORDS, clean, sentences_from_text, split_sentences, word_tokenize

TEXT = "The cat's 3.14 well-known _init_ costs $25,000! Don't stop."


def test_every_step_off_returns_the_text_unchanged():
    assert clean(TEXT, lower=False, punctuation=False, numbers=False) == TEXT


@given(st.text(max_size=60))
@settings(max_examples=60, deadline=None)
def test_every_step_off_is_the_identity_on_any_text(text):
    assert clean(text, lower=False, punctuation=False, numbers=False, stopwords=False) == text


def test_each_step_alone():
    assert clean(TEXT, punctuation=False, numbers=False) == TEXT.lower()
    assert clean(TEXT, lower=False, punctuation=False) == \
        "The cat's well-known _init_ costs $ ! Don't stop."   # removed -> a space
    assert clean(TEXT, lower=False, numbers=False) == \
        "The cat's 3 14 well-known init costs 25 000 Don't stop"
    assert clean(TEXT, lower=False, punctuation=False, numbers="N") == \
        "The cat's N well-known _init_ costs $N! Don't stop."


def test_default_cleaning_and_stop_words():
    assert clean(TEXT) == "the cat's well-known init costs don't stop"
    assert clean(TEXT, stopwords=True) == "cat's well-known init costs stop"
    assert clean("The THE the", stopwords=True, lower=False) == ""       # compared in lower case
    assert clean("he is here now", stopwords={"now"}) == "he is here"  # a list of one's own


def test_number_inside_a_word_stays_and_typographic_apostrophe_is_a_stop_word():
    assert clean("utf8 and x2 but 42") == "utf8 and x2 but"
    assert clean("Don\u2019t go", stopwords=True) == "go"


def test_line_breaks_are_kept_and_spaces_squeezed():
    assert clean("a ,  b\n\n c . d") == "a b\n\nc d"


def test_stopwords_is_our_own_lower_case_frozenset():
    assert isinstance(STOPWORDS, frozenset) and len(STOPWORDS) > 100
    assert {"the", "and", "of", "don't"} <= STOPWORDS
    assert all(w == w.lower() and w.strip() == w for w in STOPWORDS)
    assert not {"cat", "model", "python"} & STOPWORDS


def test_split_sentences_rule():
    text = 'One. Two? "Three!" Four e.g. five.\n\nSix\nseven 好。八'
    assert split_sentences(text) == ["One.", "Two?", '"Three!"', "Four e.g. five.",
                                     "Six\nseven 好。", "八"]
    assert split_sentences("   \n\n ") == []
    assert split_sentences("no end marks here\n and one per line \n\nlast") == \
        ["no end marks here", "and one per line", "last"]


def test_word_tokenize_keeps_punctuation_as_tokens():
    assert word_tokenize("Hello, world (don't) well-known.") == \
        ["Hello", ",", "world", "(", "don't", ")", "well-known", "."]


def test_sentences_from_text_drops_empty_sentences():
    assert sentences_from_text("The end. 42! ... Ok then.") == [["the", "end"], ["ok", "then"]]
    assert sentences_from_text("The end.", stopwords=True) == [["end"]]
    assert sentences_from_text("") == []


@pytest.mark.parametrize("fn", [clean, split_sentences, word_tokenize, sentences_from_text])
def test_non_text_is_a_clear_error(fn):
    with pytest.raises(TinyLMError, match="expected a str, got bytes"):
        fn(b"bytes")

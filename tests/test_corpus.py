"""Corpora (B1: collection): load_text for files and URLs, the embedded default corpus and its
cache, corpus_sentences."""
import time
from pathlib import Path

import pytest

from tinylm.errors import TinyLMError
from tinylm.text import corpus as corpus_mod
from tinylm.text import (corpus_sentences, default_corpus_info, default_sentences,
                         default_text, load_text)

DATA = Path("/work/shared/data")
PTB_VALID = DATA / "lm" / "ptb" / "ptb.valid.txt"


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """An empty cache dir and a cleared in-process memo (restored afterwards)."""
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "cache"))
    saved = dict(corpus_mod._memo)
    corpus_mod._memo.clear()
    yield tmp_path / "cache"
    corpus_mod._memo.clear()
    corpus_mod._memo.update(saved)


# --- load_text -----------------------------------------------------------------------------
def test_load_text_reads_utf8_drops_bom_and_crlf(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffHello\r\nnaïve 好\n".encode("utf-8"))
    assert load_text(path) == "Hello\nnaïve 好\n" == load_text(str(path))


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b" \n\t\n", "is empty .*white space"),
    (b"abc\x00def", "not a text file .*NUL"),
    (b"caf\xe9 latin-1", "not UTF-8 text \\(byte 3"),
])
def test_load_text_rejects_empty_and_non_text_files(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(TinyLMError, match=match):
        load_text(path)


def test_load_text_missing_folder_and_wrong_type(tmp_path):
    with pytest.raises(TinyLMError, match="does not exist"):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(TinyLMError, match="is not a file"):
        load_text(tmp_path)
    with pytest.raises(TinyLMError, match="got int"):
        load_text(42)
    with pytest.raises(TinyLMError, match="empty string"):
        load_text("  ")


def test_load_text_from_a_file_url_is_cached(tmp_path, private_cache):
    source = tmp_path / "remote.txt"
    source.write_text("First. Second one!", encoding="utf-8")
    url = source.as_uri()
    assert load_text(url) == "First. Second one!"
    cached = list((private_cache / "downloads").iterdir())
    assert len(cached) == 1 and cached[0].name.endswith("-remote.txt")
    source.unlink()                                        # the second call needs no source
    assert load_text(url) == "First. Second one!"
    assert corpus_sentences(url) == [["first"], ["second", "one"]]
    with pytest.raises(TinyLMError, match="cannot download"):
        load_text((tmp_path / "never.txt").as_uri())


# --- the default corpus: cache mechanics on a small stand-in text ---------------------------
def test_default_corpus_is_cached_and_a_corrupt_cache_is_rebuilt(private_cache, monkeypatch):
    builds = []

    def fake_build():
        builds.append(1)
        return "The first sentence. A second\none, with 3 numbers!\n\nLast\rline.\n"

    monkeypatch.setattr(corpus_mod, "build_default_text", fake_build)
    sentences = default_sentences()
    assert sentences == [["the", "first", "sentence"], ["a", "second", "one", "with",
                                                         "numbers"], ["last", "line"]]
    assert default_text() == fake_build.__call__() and len(builds) == 2
    text_file, sent_file = corpus_mod._cache_paths()
    assert text_file.parent == private_cache and sent_file.is_file()
    corpus_mod._memo.clear()
    assert default_sentences() == sentences and len(builds) == 2        # read from the cache
    assert default_corpus_info()["from_cache"] is True
    for damage in (lambda b: b[:-7], lambda b: b.replace(b"first", b"frist x"), lambda b: b"\xff"):
        sent_file.write_bytes(damage(sent_file.read_bytes()))
        corpus_mod._memo.clear()
        assert default_sentences() == sentences                          # rebuilt, not trusted
    assert len(builds) == 5


def test_default_sentences_arguments_and_copies(private_cache, monkeypatch):
    monkeypatch.setattr(corpus_mod, "build_default_text", lambda: "A b. C d. E f.\n")
    assert default_sentences(2) == [["a", "b"], ["c", "d"]]
    default_sentences(1)[0].append("changed")
    assert default_sentences(1) == [["a", "b"]]
    for bad in (0, -1, 2.5, "3"):
        with pytest.raises(TinyLMError, match="max_sentences must be a positive integer"):
            default_sentences(bad)
    with pytest.raises(TinyLMError, match="max_sentences must be a positive integer"):
        corpus_sentences(__file__, max_sentences=0)


# --- the real default corpus ---------------------------------------------------------------
def test_the_real_default_corpus():
    start = time.perf_counter()
    sentences = default_sentences()
    info = default_corpus_info()
    assert info["tokens"] > 200_000 and info["sentences"] > 10_000
    assert sum(map(len, sentences)) == info["tokens"]
    vocabulary = {w for s in sentences[:2000] for w in s}
    assert {"the", "function", "return"} <= vocabulary
    assert all(w == w.lower() and (w[0].isalnum() or w[0] in "'-") for w in vocabulary)
    assert "python" in default_text().lower()
    assert corpus_sentences(None, 50) == sentences[:50] == default_sentences(50)
    assert time.perf_counter() - start < 60


def test_default_corpus_build_is_deterministic():
    text = corpus_mod.build_default_text()
    assert text == default_text()
    assert ">>> " not in text                                          # doctest lines dropped


def test_corpus_sentences_from_a_file(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("One two. Three four five. Six.", encoding="utf-8")
    assert corpus_sentences(path) == [["one", "two"], ["three", "four", "five"], ["six"]]
    assert corpus_sentences(str(path), max_sentences=1) == [["one", "two"]]
    path.write_text("... !!! 123", encoding="utf-8")
    with pytest.raises(TinyLMError, match="no words left after cleaning"):
        corpus_sentences(path)


def test_corpus_sentences_on_ptb():
    if not PTB_VALID.is_file():
        pytest.skip(f"{PTB_VALID} is absent")
    sentences = corpus_sentences(PTB_VALID, max_sentences=500)
    assert len(sentences) == 500 and all(sentences)
    assert "unk" in {w for s in sentences for w in s}             # <unk> loses its brackets

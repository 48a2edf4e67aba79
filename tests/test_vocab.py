"""Vocab (B1, C14) and tinylm.io: edge cases, save/load, atomic writes, no pickle."""
import json
import os
import stat
from collections import Counter

import numpy as np
import pytest

from tinylm.errors import DTypeError, IndexRangeError, TinyLMError
from tinylm.io import atomic_write, load_json, load_npz, save_json, save_npz
from tinylm.text import SPECIALS, UnknownTokenError, Vocab

SENTENCES = [["the", "cat", "sat"], ["the", "dog", "sat"], ["a", "cat"], ["the"]]


def test_ids_specials_first_then_by_count_ties_in_order_of_appearance():
    v = Vocab.build(SENTENCES)
    assert v.itos == list(SPECIALS) + ["the", "cat", "sat", "dog", "a"]
    assert [v.pad_id, v.unk_id, v.bos_id, v.eos_id] == [0, 1, 2, 3]
    assert v.counts.tolist() == [0, 0, 0, 0, 3, 2, 2, 1, 1] and v.counts.dtype == np.int64
    assert v.frequencies().sum() == pytest.approx(1.0) and v.frequencies()[4] == 3 / 9
    assert all(v.stoi[t] == i for i, t in enumerate(v.itos)) and len(v) == 9


def test_min_count_and_max_size_c14_cap():
    v = Vocab.build(SENTENCES, min_count=2)
    assert v.itos[4:] == ["the", "cat", "sat"]
    assert Vocab.build(SENTENCES, max_size=6).itos[4:] == ["the", "cat"]      # specials count
    counts = Counter({f"w{i}": 30000 - i for i in range(26000)})
    capped = Vocab(counts, max_size=25000)
    assert len(capped) == 25000 and capped.itos[-1] == f"w{25000 - 4 - 1}"
    assert capped["w25999"] == capped.unk_id


def test_unknown_tokens_go_to_unk_or_raise_without_it():
    v = Vocab.build(SENTENCES)
    assert v["zebra"] == 1 and v.encode(["the", "zebra"]).tolist() == [4, 1]
    plain = Vocab.build(SENTENCES, specials=())
    assert plain.itos[0] == "the"
    with pytest.raises(UnknownTokenError, match="'zebra' is not in the vocabulary") as info:
        plain["zebra"]
    assert isinstance(info.value, KeyError)
    with pytest.raises(TinyLMError, match="has no <unk>"):
        plain.unk_id


def test_specials_in_the_corpus_are_not_counted_twice():
    v = Vocab(Counter({"<unk>": 5, "x": 1}))
    assert v.itos == list(SPECIALS) + ["x"] and v.counts[1] == 0


def test_decode_and_bad_ids():
    v = Vocab.build(SENTENCES)
    assert v.decode(np.array([4, 5, 1])) == ["the", "cat", "<unk>"]
    with pytest.raises(IndexRangeError, match="id 9 is outside 0..8"):
        v.decode([9])
    with pytest.raises(IndexRangeError, match="id -1"):
        v.decode([-1])
    with pytest.raises(DTypeError, match="ids must be integers, got 1.7"):
        v.decode([1.7])
    with pytest.raises(TinyLMError, match="expected a list of tokens, got the string"):
        v.encode("the cat")


@pytest.mark.parametrize("kwargs, match", [
    ({"counts": {}}, "corpus is empty"),
    ({"counts": {"a": 1, "b": 2}, "min_count": 3}, "no token occurs at least min_count=3 "
                                                   "times \\(the most frequent, 'b', occurs 2"),
    ({"counts": {"a": 1}, "min_count": 0}, "min_count must be an integer >= 1, got 0"),
    ({"counts": {"a": 1}, "min_count": 1.5}, "min_count must be an integer"),
    ({"counts": {"a": 1}, "max_size": 4}, "larger than the 4 specials, got 4"),
    ({"counts": {"a": 1}, "specials": ("<pad>", "<pad>")}, "specials must be distinct"),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(TinyLMError, match=match):
        Vocab(**kwargs)


def test_build_rejects_strings_and_empty_corpus():
    with pytest.raises(TinyLMError, match="sentence 0 is a string"):
        Vocab.build(["the cat"])
    with pytest.raises(TinyLMError, match="corpus is empty"):
        Vocab.build([[], []])


def test_save_load_round_trip_is_json(tmp_path):
    v = Vocab.build(SENTENCES + [["naïve", "好"]], min_count=1, max_size=20)
    path = tmp_path / "vocab.json"
    v.save(path)
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["format"] == "tinylm.Vocab" and "好" in d["tokens"]
    w = Vocab.load(path)
    assert w.itos == v.itos and w.stoi == v.stoi and w.specials == v.specials
    np.testing.assert_array_equal(w.counts, v.counts)
    assert (w.min_count, w.max_size) == (1, 20) and w["zebra"] == w.unk_id


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid UTF-8 JSON"),
    ('{"format": "other"}', "not a saved tinylm Vocab"),
    ('[1, 2, 3]', "not a saved tinylm Vocab"),
    ('{"format": "tinylm.Vocab", "tokens": ["a"]}', "needs 'specials', 'tokens'"),
    ('{"format": "tinylm.Vocab", "specials": [], "tokens": ["a", "b"], "counts": [1], '
     '"min_count": 1, "max_size": null}', "2 tokens but 1 counts"),
    ('{"format": "tinylm.Vocab", "specials": ["a"], "tokens": ["a"], "counts": [1], '
     '"min_count": 1, "max_size": null}', "distinct strings"),
    ('{"format": "tinylm.Vocab", "specials": [], "tokens": ["a"], "counts": [-1], '
     '"min_count": 1, "max_size": null}', "integers >= 0"),
])
def test_corrupt_vocab_files(tmp_path, content, match):
    path = tmp_path / "v.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TinyLMError, match=match):
        Vocab.load(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(TinyLMError, match="does not exist"):
        Vocab.load(tmp_path / "nope.json")
    with pytest.raises(TinyLMError, match="is not a file"):
        Vocab.load(tmp_path)
    with pytest.raises(TinyLMError, match="folder .* does not exist"):
        Vocab.build(SENTENCES).save(tmp_path / "no" / "v.json")


# --- tinylm.io -------------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_on_an_exception(tmp_path):
    path = tmp_path / "data.json"
    save_json(path, {"version": 1})
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write('{"version": 2, "half')
            raise RuntimeError("disk full")
    assert load_json(path) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]       # no temp file left


def test_atomic_write_new_file_and_permissions(tmp_path):
    path = tmp_path / "new.bin"
    with atomic_write(path) as f:
        f.write(b"abc")
    assert path.read_bytes() == b"abc"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask      # not mkstemp's 0600
    os.chmod(path, 0o640)
    with atomic_write(path) as f:
        f.write(b"xyz")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_bytes() == b"xyz"


def test_npz_round_trip_without_pickle(tmp_path):
    path = tmp_path / "arrays.npz"
    save_npz(path, a=np.arange(5), b=np.eye(2, dtype=np.float32))
    got = load_npz(path)
    np.testing.assert_array_equal(got["a"], np.arange(5))
    assert got["b"].dtype == np.float32
    obj = tmp_path / "obj.npz"
    np.savez(obj, o=np.array([{"x": 1}], dtype=object))        # needs pickle to read
    with pytest.raises(TinyLMError, match="not an .npz archive of plain arrays"):
        load_npz(obj)


@pytest.mark.parametrize("maker", [
    lambda p: p.write_bytes(b"PK\x03\x04 truncated zip"),
    lambda p: p.write_bytes(b"\x00\x01garbage"),
    lambda p: np.save(p.open("wb"), np.arange(3)) or None,
])
def test_corrupt_npz_files_are_clear_errors(tmp_path, maker):
    path = tmp_path / "bad.npz"
    maker(path)
    import gc
    gc.collect()                                            # close the np.save file handle
    with pytest.raises(TinyLMError, match="is not an .npz archive"):
        load_npz(path, "word vectors")

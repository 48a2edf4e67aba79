"""BPETokenizer: byte-level byte-pair encoding, trained from scratch (A2 step 2, subwords).

Byte-level: the text is UTF-8 bytes, and the base vocabulary is the 256 byte values, so any
text at all encodes, with no unknown token, and ``decode(encode(x)) == x`` exactly (Chinese,
emoji, control characters; even a lone surrogate, carried with ``surrogatepass``).

Training (Sennrich et al. 2016, on bytes as in GPT-2):

1. pre-tokenize: split the text with ``PRETOKENIZE_RE`` into pieces (a word with its leading
   space, a number, a run of punctuation, white space), so merges never cross a word
   boundary, and count each distinct piece once with its frequency;
2. count every adjacent pair of ids inside the pieces, weighted by the piece's frequency;
3. repeat until ``vocab_size``: the most frequent pair ``(a, b)`` (ties: the smallest ids)
   becomes a new id ``256 + k``, every occurrence of ``a b`` is replaced by it.

Step 3 is incremental: an index from each pair to the pieces that contain it means a merge
only rewrites the pieces where the pair occurs and adjusts the counts of the pairs around
it; a heap with lazy deletion finds the most frequent pair. So a merge costs in proportion to
where its pair occurs, not to the corpus size.

Encoding a piece applies the learned merges in the order they were learned (always the
lowest-rank pair present next); each distinct piece is encoded once and cached.

Special tokens (optional, e.g. ``specials=("<eos>",)``) get the ids after the merges; they
are never produced from text (``encode("<eos>")`` gives the bytes of "<eos>"), only by
``special_id(name)``, and decode to their name.
"""
import heapq
import re
from collections import Counter, defaultdict

from ...errors import TinyLMError
from .base import Tokenizer, check_ids, check_text, check_texts

# GPT-2's pre-tokenization idea, written with Python's `re` (no \p{L}): English contractions;
# an optional space and letters; an optional space and digits; an optional space and other
# symbols (``_`` counts as a symbol here); white space not followed by a non-space (so a space
# before a word stays with the word); remaining white space. Every character is matched by one
# of the branches, so the pieces concatenate back to the text.
PRETOKENIZE_RE = re.compile(
    r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


def _to_bytes(text):
    return text.encode("utf-8", errors="surrogatepass")


def _merge(ids, pair, new_id):
    """``ids`` with every non-overlapping occurrence of ``pair`` (left to right) -> new_id."""
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(Tokenizer):
    FORMAT = "tinylm.BPETokenizer"

    def __init__(self, merges, specials=()):
        """``merges``: the learned pairs in order, ``merges[k] = (a, b)`` made id ``256 + k``."""
        merges = [tuple(int(x) for x in m) for m in merges]
        for k, m in enumerate(merges):
            if len(m) != 2 or not all(0 <= x < 256 + k for x in m):
                raise TinyLMError(f"BPETokenizer: merge {k} must be a pair of ids below "
                                  f"{256 + k}, got {list(m)}")
        specials = tuple(specials)
        if len(set(specials)) != len(specials) or not all(isinstance(s, str) for s in specials):
            raise TinyLMError(f"BPETokenizer: specials must be distinct strings, got {specials}")
        self.merges, self.specials = merges, specials
        self.ranks = {m: k for k, m in enumerate(merges)}
        self.pieces = [bytes([b]) for b in range(256)]     # id -> its bytes
        for a, b in merges:
            self.pieces.append(self.pieces[a] + self.pieces[b])
        first = 256 + len(merges)
        self._special_ids = {s: first + i for i, s in enumerate(specials)}
        self.pieces.extend(s.encode("utf-8") for s in specials)
        self._cache = {}

    # --- training ----------------------------------------------------------------------
    @classmethod
    def train(cls, texts, vocab_size, specials=(), min_frequency=2):
        """Learn ``vocab_size - 256 - len(specials)`` merges from ``texts`` (a string or an
        iterable of strings). Training stops early, with a smaller vocabulary, when no pair
        occurs ``min_frequency`` times any more."""
        texts = check_texts(texts, "BPETokenizer.train")
        n_merges = vocab_size - 256 - len(specials) if isinstance(vocab_size, int) else -1
        if isinstance(vocab_size, bool) or n_merges < 0:
            raise TinyLMError(f"BPETokenizer.train: vocab_size must be an integer >= 256 + "
                              f"{len(specials)} specials, got {vocab_size!r}")
        counts = Counter()
        for text in texts:
            counts.update(PRETOKENIZE_RE.findall(text))
        if not counts:
            raise TinyLMError("BPETokenizer.train: the corpus is empty (no text to learn from)")
        words = [list(_to_bytes(w)) for w in counts]
        freqs = list(counts.values())
        return cls(learn_merges(words, freqs, n_merges, min_frequency), specials)

    # --- the interface -----------------------------------------------------------------
    @property
    def vocab_size(self):
        return len(self.pieces)

    def special_id(self, name):
        if name not in self._special_ids:
            raise TinyLMError(f"BPETokenizer: no special token {name!r} "
                              f"(specials: {self.specials})")
        return self._special_ids[name]

    def encode_piece(self, piece):
        """The ids of one pre-tokenized piece (cached)."""
        ids = self._cache.get(piece)
        if ids is None:
            ids = list(_to_bytes(piece))
            ranks = self.ranks
            while len(ids) > 1:
                best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 62))
                if best not in ranks:
                    break
                ids = _merge(ids, best, 256 + ranks[best])
            if len(self._cache) < 1_000_000:      # bound the memory on huge vocabularies
                self._cache[piece] = ids
        return ids

    def encode(self, text):
        check_text(text, "BPETokenizer.encode")
        out = []
        for piece in PRETOKENIZE_RE.findall(text):
            out.extend(self.encode_piece(piece))
        return out

    def decode_bytes(self, ids):
        ids = check_ids(ids, len(self.pieces), "BPETokenizer.decode")
        return b"".join(self.pieces[i] for i in ids)

    def decode(self, ids):
        """The text of ``ids``. Bytes that are not valid UTF-8 (ids cut in the middle of a
        character) become U+FFFD."""
        data = self.decode_bytes(ids)
        try:
            return data.decode("utf-8", errors="surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", errors="replace")

    def token_strings(self, ids):
        """Each id's bytes shown as text (invalid UTF-8 as U+FFFD), for printing."""
        return [self.pieces[i].decode("utf-8", errors="replace") for i in
                check_ids(ids, len(self.pieces), "BPETokenizer.token_strings")]

    # --- saving ------------------------------------------------------------------------
    def to_dict(self):
        return {"format": self.FORMAT, "version": 1, "byte_level": True,
                "pretokenize": PRETOKENIZE_RE.pattern,
                "merges": [list(m) for m in self.merges], "specials": list(self.specials)}

    @classmethod
    def from_dict(cls, d):
        merges, specials = d["merges"], d["specials"]
        if d.get("pretokenize") != PRETOKENIZE_RE.pattern:
            raise TinyLMError("BPETokenizer: saved with another pre-tokenization pattern; "
                              "its merges would not apply the same way")
        return cls(merges, specials)

    def __repr__(self):
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"specials={list(self.specials)})")


def learn_merges(words, freqs, n_merges, min_frequency=2):
    """The BPE training loop with incremental pair counts (see the module docstring).

    ``words``: lists of ids (modified in place), ``freqs``: how often each word occurs.
    Returns the list of merged pairs, in order."""
    pair_count = defaultdict(int)
    where = defaultdict(set)                 # pair -> indices of the words that contain it
    for w, (ids, f) in enumerate(zip(words, freqs)):
        for pair in zip(ids, ids[1:]):
            pair_count[pair] += f
            where[pair].add(w)
    heap = [(-c, pair) for pair, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg:      # a stale entry: the count changed since
            continue
        if -neg < min_frequency:
            break
        new_id = 256 + len(merges)
        merges.append(pair)
        changed = set()
        for w in where.pop(pair):
            ids, f = words[w], freqs[w]
            new = _merge(ids, pair, new_id)
            if len(new) == len(ids):             # the pair left this word in an earlier merge
                continue
            for p in zip(ids, ids[1:]):
                pair_count[p] -= f
                changed.add(p)
            for p in zip(new, new[1:]):
                pair_count[p] += f
                where[p].add(w)
                changed.add(p)
            words[w] = new
        pair_count.pop(pair, None)
        changed.discard(pair)
        for p in changed:
            c = pair_count[p]
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
                where.pop(p, None)
    return merges

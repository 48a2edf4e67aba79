"""Corpora: the embedded default (always there, no download) and any UTF-8 file or URL (B1).

B1's pipeline starts with *collection*. tinylm ships no data files; its default corpus is
English prose every Python installation already has: Python's own documentation in the
standard library,

* ``pydoc_data.topics.topics``: the language reference topics ``help()`` shows (sorted keys);
* the docstrings of the standard library's modules, classes and functions, read with
  ``ast.get_docstring`` from the ``.py`` sources (sorted paths) **without importing them**
  (importing ``antigravity`` opens a browser, ``tkinter`` needs a display); test suites,
  ``idlelib``, ``lib2to3`` and ``site-packages`` are skipped, and doctest lines
  (``>>>``/``...``) are dropped.

The first call builds it (a few seconds: parsing ~600 files) and caches two plain-text files
under the cache directory (``$TINYLM_CACHE``, else ``~/.cache/tinylm``), keyed by the Python
version and a hash of the cleaning code: the raw text, and the cleaned sentences one per
line with tokens separated by spaces
(a token never contains white space). Both are written atomically; a header line carries the
format version and the counts, and a cache that does not match (corrupt, truncated, another
version) is rebuilt. The same Python gives the same corpus on every machine.

``load_text(path_or_url)`` reads any UTF-8 file (tiny Shakespeare, PTB, WikiText) or URL
(downloaded once into ``<cache>/downloads/``), with a TinyLMError for a missing, empty or
non-text file.
"""
import ast
import hashlib
import os
import re
import sys
import sysconfig
import time
from pathlib import Path

from ..errors import TinyLMError
from ..io import atomic_write
from .clean import sentences_from_text

__all__ = ["cache_dir", "load_text", "default_text", "default_sentences", "corpus_sentences",
           "default_corpus_info", "build_default_text"]

FORMAT_VERSION = 1
SKIP_DIRS = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3",
                       "__pycache__", "ensurepip"})
_DOCTEST_RE = re.compile(r"^[ \t]*(?:>>>|\.\.\.)(?: .*)?$\n?", re.MULTILINE)
_URL_SCHEMES = ("http://", "https://", "file://", "ftp://")

_memo = {}          # in-process copies: (kind) -> value
_last_build = {}    # how the last default corpus was obtained (seconds, from cache or not)


def cache_dir():
    """``$TINYLM_CACHE`` if set, else ``~/.cache/tinylm`` (created when needed)."""
    path = Path(os.environ.get("TINYLM_CACHE") or Path.home() / ".cache" / "tinylm")
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- any file or URL ----------------------------------------------------------------------
def _decode(data, where):
    if not data.strip():
        raise TinyLMError(f"load_text: {where} is empty (expected UTF-8 text, got "
                          f"{len(data)} bytes{' of white space' if data else ''})")
    if b"\x00" in data:
        raise TinyLMError(f"load_text: {where} is not a text file (it contains NUL bytes; "
                          "expected UTF-8 text)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TinyLMError(f"load_text: {where} is not UTF-8 text (byte {exc.start}: "
                          f"{exc.reason})") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def _download(url):
    """The local copy of ``url`` under ``<cache>/downloads``, fetched once (atomically)."""
    import urllib.error          # here, not at the top: keeps `import tinylm.text` cheap
    import urllib.parse
    import urllib.request
    folder = cache_dir() / "downloads"
    folder.mkdir(exist_ok=True)
    name = Path(urllib.parse.urlparse(url).path).name or "index"
    target = folder / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    if target.is_file():
        return target
    try:
        with urllib.request.urlopen(url, timeout=60) as response, \
                atomic_write(target, "wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:   # URLError is an OSError
        raise TinyLMError(f"load_text: cannot download {url} ({exc})") from None
    return target


def load_text(path_or_url):
    """The text of a UTF-8 file or URL (a BOM is dropped, ``\\r\\n`` becomes ``\\n``).

    URLs (``http(s)://``, ``file://``, ``ftp://``) are downloaded once and cached under
    ``<cache dir>/downloads``. TinyLMError for a missing path, a folder, an empty file, or
    bytes that are not UTF-8 text."""
    if isinstance(path_or_url, Path):
        source = path_or_url
    elif isinstance(path_or_url, str):
        if not path_or_url.strip():
            raise TinyLMError("load_text: expected a file path or URL, got an empty string")
        if path_or_url.lower().startswith(_URL_SCHEMES):
            local = _download(path_or_url)
            return _decode(local.read_bytes(), f"{path_or_url} (cached as {local})")
        source = Path(path_or_url).expanduser()
    else:
        raise TinyLMError(f"load_text: expected a file path or URL (str or Path), got "
                          f"{type(path_or_url).__name__}")
    if not source.exists():
        raise TinyLMError(f"load_text: {source} does not exist (expected a UTF-8 text file)")
    if not source.is_file():
        raise TinyLMError(f"load_text: {source} is not a file (expected a UTF-8 text file)")
    return _decode(source.read_bytes(), str(source))


# --- the default corpus ---------------------------------------------------------------------
def _stdlib_sources():
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if not SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            yield path


def _docstrings(path):
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):     # a stray file this Python cannot parse
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def build_default_text():
    """Build the default corpus text from scratch (no cache): the pydoc topics (sorted keys),
    then the standard library's docstrings (sorted paths, ``ast.walk`` order), paragraphs
    separated by blank lines, doctest lines removed."""
    from pydoc_data.topics import topics
    parts = [topics[key] for key in sorted(topics)]
    for path in _stdlib_sources():
        parts.extend(_docstrings(path))
    parts = [_DOCTEST_RE.sub("", p.replace("\r\n", "\n").replace("\r", "\n")).strip()
             for p in parts]
    return "\n\n".join(p for p in parts if p) + "\n"


def _pipeline_hash():
    """A short hash of the code that makes the corpus: a change to the cleaning rules makes a
    new cache instead of reusing sentences cleaned the old way."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in ("corpus.py", "clean.py", "stopwords.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:10]


def _cache_paths():
    key = f"py{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}" \
          f"-{sys.implementation.name}-v{FORMAT_VERSION}-{_pipeline_hash()}"
    folder = cache_dir()
    return folder / f"default_corpus-{key}.txt", folder / f"default_sentences-{key}.txt"


def _header(kind, n_lines, n_words):
    return f"# tinylm default corpus {kind} v{FORMAT_VERSION} lines={n_lines} words={n_words}\n"


def _read_cached(path, kind):
    """The body lines of a cache file if its header matches its contents, else None."""
    try:
        # bytes, not read_text: universal newlines would turn a "\r" into a line break
        header, _, body = path.read_bytes().decode("utf-8").partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    lines = body.split("\n")[:-1] if body.endswith("\n") else None
    if lines is None:
        return None
    words = sum(len(line.split()) for line in lines)
    return lines if header + "\n" == _header(kind, len(lines), words) else None


def _write_cached(path, kind, lines):
    words = sum(len(line.split()) for line in lines)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(_header(kind, len(lines), words))
        f.write("".join(line + "\n" for line in lines))


def _build_and_cache():
    start = time.perf_counter()
    text = build_default_text()
    sentences = sentences_from_text(text)
    text_path, sent_path = _cache_paths()
    _write_cached(text_path, "text", text.split("\n")[:-1])
    _write_cached(sent_path, "sentences", [" ".join(s) for s in sentences])
    _last_build.update(seconds=time.perf_counter() - start, from_cache=False)
    return text, sentences


def _load_default():
    if "text" in _memo:
        return _memo["text"], _memo["sentences"]
    start = time.perf_counter()
    text_path, sent_path = _cache_paths()
    text_lines = _read_cached(text_path, "text")
    sent_lines = _read_cached(sent_path, "sentences") if text_lines is not None else None
    if text_lines is None or sent_lines is None:
        text, sentences = _build_and_cache()
    else:
        text = "\n".join(text_lines) + "\n"
        sentences = [line.split(" ") for line in sent_lines]
        _last_build.update(seconds=time.perf_counter() - start, from_cache=True)
    _memo["text"], _memo["sentences"] = text, sentences
    return text, sentences


def default_text():
    """The raw text of the embedded default corpus (built and cached on first use)."""
    return _load_default()[0]


def default_sentences(max_sentences=None):
    """The default corpus as cleaned, word-tokenized sentences (``sentences_from_text`` with
    its defaults: lower-cased, no punctuation, no numbers, stop words kept); the first
    ``max_sentences`` of them when given. Fresh lists on every call (safe to modify)."""
    sentences = _load_default()[1]
    if max_sentences is not None:
        if not isinstance(max_sentences, int) or max_sentences < 1:
            raise TinyLMError(f"default_sentences: max_sentences must be a positive integer "
                              f"or None, got {max_sentences!r}")
        sentences = sentences[:max_sentences]
    return [list(s) for s in sentences]


def default_corpus_info():
    """Sizes of the default corpus and how it was obtained: a dict with ``characters``,
    ``words`` (white-space separated, raw text), ``sentences``, ``tokens`` (cleaned),
    ``seconds`` and ``from_cache`` (of the first load in this process), ``cache`` (the path)."""
    text, sentences = _load_default()
    return {"characters": len(text), "words": len(text.split()), "sentences": len(sentences),
            "tokens": sum(len(s) for s in sentences), "seconds": _last_build.get("seconds"),
            "from_cache": _last_build.get("from_cache"), "cache": str(_cache_paths()[1])}


def corpus_sentences(corpus=None, max_sentences=None):
    """The sentences chapters train on: ``default_sentences(max_sentences)`` when ``corpus`` is
    None, else ``sentences_from_text(load_text(corpus))`` (the first ``max_sentences``).
    TinyLMError when the file gives no sentence at all."""
    if corpus is None:
        return default_sentences(max_sentences)
    if max_sentences is not None and (not isinstance(max_sentences, int) or max_sentences < 1):
        raise TinyLMError(f"corpus_sentences: max_sentences must be a positive integer or "
                          f"None, got {max_sentences!r}")
    sentences = sentences_from_text(load_text(corpus))
    if not sentences:
        raise TinyLMError(f"corpus_sentences: {corpus} has no words left after cleaning")
    return sentences[:max_sentences] if max_sentences is not None else sentences

"""tinylm's exceptions: one base class, so ``except tinylm.TinyLMError`` catches them all.

Every public entry point checks its input and raises one of these with a message that says
what was expected and what came, e.g. ``matmul: (3, 4) @ (5, 2): inner sizes 4 and 5 differ``.
"""


class TinyLMError(Exception):
    """Base class of every error tinylm raises on purpose."""


class ShapeError(TinyLMError, ValueError):
    """An array had the wrong shape (also a ``ValueError``, so generic handlers still work)."""


class DTypeError(TinyLMError, TypeError):
    """An array had the wrong dtype, e.g. float token ids or an integer tensor needing a gradient."""


class GradError(TinyLMError, RuntimeError):
    """``backward()`` was called in a way that cannot work (non-scalar output without ``grad``...)."""


class IndexRangeError(TinyLMError, IndexError):
    """An index (a token id, a class label) is outside the range the layer or loss accepts."""


class NumericalError(TinyLMError, FloatingPointError):
    """A NaN or an infinity where a finite number was needed: a diverging training loss, or
    the op that ``tinylm.detect_anomaly()`` caught making one."""

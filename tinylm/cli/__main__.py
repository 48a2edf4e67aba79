"""``python -m tinylm.cli ...``: the same as ``python -m tinylm train|generate|evaluate ...``."""
import sys

from . import main

sys.exit(main())

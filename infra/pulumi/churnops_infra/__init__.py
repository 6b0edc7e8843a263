"""The churnops Pulumi program's components.

The platform's names and versions are declared once, in ``churnops/platform/declaration.py`` (standard
library only); this environment does not install churnops, so the repository root is put on the path
and that one module is imported from it (``churnops/__init__.py`` and ``churnops/platform/__init__.py``
import nothing).
"""

import sys
from pathlib import Path

_REPOSITORY = str(Path(__file__).resolve().parents[3])
if _REPOSITORY not in sys.path:
    sys.path.append(_REPOSITORY)

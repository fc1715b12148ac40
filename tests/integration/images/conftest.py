"""Image integration tests share the layer builders of tests/unit/images (layertools)."""

import sys
from pathlib import Path

_TOOLS = str(Path(__file__).resolve().parents[2] / "unit" / "images")
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)

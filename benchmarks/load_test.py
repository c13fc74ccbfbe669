"""``benchmarks/ingest.py`` for the other benchmark scripts: ``from load_test import load_test``.

Its file name is the ingest app's, so it is loaded by path under another name. Importing this also
puts the repository ahead of ``benchmarks/`` on ``sys.path``, so that ``import ingest`` finds the app.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("ingest_benchmark", ROOT / "benchmarks" / "ingest.py")
load_test = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load_test)

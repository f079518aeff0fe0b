"""The test suite: one directory per app (tests/README.md), shared helpers at this level."""

from pathlib import Path

# The repository root, named once here because test modules sit at different depths below it.
ROOT = Path(__file__).resolve().parent.parent

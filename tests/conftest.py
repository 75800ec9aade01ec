"""Test-suite set-up: the tests are laid out like the packages (``tests/lightning_hash/...``, ``tests/datamodules``,
``tests/experiments``); the helpers shared by the end-to-end tests (``run_helpers``) stay in ``tests/``, which is
put on ``sys.path`` here for the test modules in the sub-folders."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

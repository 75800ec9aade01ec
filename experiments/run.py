#!/usr/bin/env python
"""The one entry point: ``python experiments/run.py --method djsrh [--data digits] [--bits 64] ...``.

The same code as the console command ``lightning-hash`` of an installed package
(:func:`lightning_hash.experiment.main`, configs from the package data ``lightning_hash/configs``). See
``python experiments/run.py --help`` and ``lightning_hash/experiment.py`` for what a run does and writes.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lightning_hash.experiment import main  # noqa: E402

if __name__ == "__main__":
    main()

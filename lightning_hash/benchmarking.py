"""Shared set-up of the timing and diagnostic scripts under ``experiments/`` (benchmark tables are grids run by
``experiments/bench.py`` through the one runner)."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Union


def prepare_benchmark(output: Union[str, os.PathLike]) -> Path:
    """Quiet Lightning's warnings and logs, use ``$OMP_NUM_THREADS`` torch threads (default 1), create ``output``.

    One thread by default: on a machine whose cores are shared, torch's default of one thread per core
    thrashes (measured here: a DJSRH step 820 ms with 2 threads under load vs 31 ms with 1), and timings taken
    with a fixed thread count are comparable between runs.
    """
    import torch

    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    return out

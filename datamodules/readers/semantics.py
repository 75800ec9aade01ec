"""Class-level semantics: attribute matrices and class-name word vectors, and how to attach them to a dataset.

These files describe classes, not items, so their readers return a :class:`ClassSemantics` (class names, one
or more ``[C, d]`` matrices, optionally a published unseen-class list) instead of a ``DatasetArrays``;
:func:`attach_semantics` aligns one to a dataset's classes by name and returns a ``DatasetArrays`` with it in
``class_semantics``.

Layouts read
------------
* **Animals with Attributes** (Lampert et al.)::

      predicate-matrix-binary.txt      50 x 85 0/1 (whitespace-separated), one row per class
      predicate-matrix-continuous.txt  50 x 85 (optional; kind="continuous")
      classes.txt                      "  1<TAB>antelope" ... (1-based number, name)
      predicates.txt                   "  1<TAB>black" ...
      testclasses.txt                  (optional) the 10 unseen classes; when absent, the standard split of
                                       Lampert et al. (:data:`AWA_UNSEEN_CLASSES`) is returned if all its
                                       classes are in classes.txt, else ``None``

* **Sketchy / TU-Berlin word2vec** (doodle2search release)::

      semantic_labels_<sketchy|tuberlin>.npy   C x 300 float32, row i = class vocab[i]
      vocab_<sketchy|tuberlin>.pkl             pickled Python list of the C class names
      zeroshot_classes_sketchy.txt             (Sketchy only) the 21 unseen classes of Yelamarthi et al.

  The vocabulary pickle is loaded with an unpickler that refuses every global, so only plain lists and
  strings can come out of it.
"""
from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, numbered_names, read_lines, require_dir, require_file

__all__ = ["ClassSemantics", "read_awa_attributes", "read_sketch_word2vec", "read_word_vectors",
           "attach_semantics", "normalize_class_name", "AWA_UNSEEN_CLASSES"]

#: the 10 AwA test classes of Lampert et al.'s standard 40/10 split (as spelled in AwA's classes.txt)
AWA_UNSEEN_CLASSES = ("chimpanzee", "giant+panda", "hippopotamus", "humpback+whale", "leopard", "persian+cat",
                      "pig", "raccoon", "rat", "seal")

AWA_LAYOUT = ("a folder with predicate-matrix-binary.txt (C x A 0/1), classes.txt and predicates.txt "
              "(numbered name lists), optionally predicate-matrix-continuous.txt and testclasses.txt")
SKETCH_LAYOUT = ("a folder with semantic_labels_<dataset>.npy (C x d), vocab_<dataset>.pkl (list of C class names) "
                 "and, for sketchy, zeroshot_classes_sketchy.txt")


@dataclass
class ClassSemantics:
    """Class-level vectors read from a published file.

    Attributes
    ----------
    class_names:
        the ``C`` classes, in row order of every matrix in ``vectors``.
    vectors:
        name (``"attributes"``, ``"word_vectors"``, ...) -> ``float32 [C, d]``.
    dimension_names:
        optional per-matrix names of the ``d`` columns (e.g. AwA's 85 predicates).
    unseen_classes:
        a published zero-shot hold-out (class names), or ``None``.
    splits:
        published item splits that come with the file (xlsa17's ``trainval_loc`` ...), name -> 0-based
        ``int64`` row indices into the paired feature file; empty otherwise.
    source:
        the files read.
    """

    class_names: List[str]
    vectors: Dict[str, np.ndarray]
    dimension_names: Dict[str, List[str]] = field(default_factory=dict)
    unseen_classes: Optional[List[str]] = None
    splits: Dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        c = len(self.class_names)
        if len(set(self.class_names)) != c:
            dup = sorted({n for n in self.class_names if self.class_names.count(n) > 1})
            raise ValueError(f"{self.source}: class names repeat: {dup}")
        for name, v in self.vectors.items():
            v = np.asarray(v)
            if v.ndim != 2 or v.shape[0] != c:
                raise ValueError(f"{self.source}: '{name}' has shape {v.shape}; expected [{c}, d] (one row per class)")
            if not np.isfinite(v).all():
                raise ValueError(f"{self.source}: '{name}' contains NaN/inf")
            self.vectors[name] = np.ascontiguousarray(v, dtype=np.float32)
        if self.unseen_classes is not None:
            unknown = [u for u in self.unseen_classes if u not in self.class_names]
            if unknown:
                raise ValueError(f"{self.source}: unseen classes {unknown} are not among the {c} class names")


def normalize_class_name(name: str) -> str:
    """Lower-case ``name`` and unify separators: ``"Giant+Panda"``, ``"giant panda"``, ``"giant_panda"`` ->
    ``"giant_panda"``; CUB-style numeric prefixes (``"001.Black_footed_Albatross"``) are dropped."""
    name = re.sub(r"^\d+\.", "", name.strip())
    return re.sub(r"[\s+\-_]+", "_", name.lower())


def _read_matrix(path: Path) -> np.ndarray:
    rows = [ln.split() for ln in read_lines(path)]
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"{path}: rows have different numbers of values {sorted(widths)}")
    try:
        return np.asarray(rows, dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: non-numeric entry ({e})") from None


def read_awa_attributes(root: PathLike, *, kind: str = "binary") -> ClassSemantics:
    """Read the Animals-with-Attributes class-attribute matrix.

    Parameters
    ----------
    root:
        folder with the AwA files (see the module docstring).
    kind:
        ``"binary"`` (``predicate-matrix-binary.txt``) or ``"continuous"``.

    Returns
    -------
    ClassSemantics
        ``vectors["attributes"]`` float32 ``[50, 85]``, ``dimension_names["attributes"]`` the 85 predicates,
        ``unseen_classes`` the 10 test classes (``testclasses.txt`` when present, else the standard list when
        the file lists those classes, else ``None``).

    Example
    -------
    >>> awa = read_awa_attributes("../shared/data/semantics/awa")     # doctest: +SKIP
    >>> awa.vectors["attributes"].shape                              # doctest: +SKIP
    (50, 85)
    """
    if kind not in ("binary", "continuous"):
        raise ValueError(f"kind must be 'binary' or 'continuous', got {kind!r}")
    root = require_dir(root, AWA_LAYOUT)
    classes = numbered_names(root / "classes.txt", AWA_LAYOUT)
    predicates = numbered_names(root / "predicates.txt", AWA_LAYOUT)
    mpath = require_file(root / f"predicate-matrix-{kind}.txt", AWA_LAYOUT)
    m = _read_matrix(mpath)
    if m.shape != (len(classes), len(predicates)):
        raise ValueError(f"{mpath}: shape {m.shape} does not match {len(classes)} classes x {len(predicates)} "
                         "predicates")
    if kind == "binary" and not np.isin(m, (0, 1)).all():
        raise ValueError(f"{mpath}: the binary predicate matrix holds values other than 0 and 1")
    test = root / "testclasses.txt"
    if test.is_file():
        unseen = [ln.strip() for ln in read_lines(test)]
    elif set(AWA_UNSEEN_CLASSES) <= set(classes):
        unseen = list(AWA_UNSEEN_CLASSES)
    else:  # not the AwA class list: the standard split does not apply
        unseen = None
    return ClassSemantics(class_names=classes, vectors={"attributes": m}, dimension_names={"attributes": predicates},
                          unseen_classes=unseen, source=str(root))


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a class-name vocabulary holds only strings")


def read_word_vectors(vectors_file: PathLike, vocab_file: PathLike, *, unseen_file: Optional[PathLike] = None,
                      layout: str = SKETCH_LAYOUT) -> ClassSemantics:
    """Read a ``C x d`` ``.npy`` of class word vectors with its class-name vocabulary (``.pkl`` list or ``.txt``).

    Returns
    -------
    ClassSemantics
        ``vectors["word_vectors"]`` float32 ``[C, d]``; ``unseen_classes`` from ``unseen_file`` when given.
    """
    vpath = require_file(vectors_file, layout)
    qpath = require_file(vocab_file, layout)
    try:
        vec = np.load(vpath, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{vpath}: not a numeric .npy array ({e})") from None
    if qpath.suffix == ".pkl":
        try:
            vocab = _PlainUnpickler(io.BytesIO(qpath.read_bytes()), encoding="latin1").load()
        except Exception as e:
            raise ValueError(f"{qpath}: not a pickled list of class names ({e})") from None
    else:
        vocab = [ln.strip() for ln in read_lines(qpath)]
    if not isinstance(vocab, (list, tuple)) or not all(isinstance(v, (str, bytes)) for v in vocab):
        raise ValueError(f"{qpath}: expected a list of class names, got {type(vocab).__name__}")
    vocab = [v.decode() if isinstance(v, bytes) else v for v in vocab]
    if vec.ndim != 2 or vec.shape[0] != len(vocab):
        raise ValueError(f"{vpath}: shape {vec.shape} does not match the {len(vocab)} class names of {qpath}")
    unseen = None
    if unseen_file is not None:
        upath = require_file(unseen_file, layout)
        unseen = [ln.strip() for ln in read_lines(upath)]
    return ClassSemantics(class_names=list(vocab), vectors={"word_vectors": vec}, unseen_classes=unseen,
                          source=f"{vpath}; {qpath}")


def read_sketch_word2vec(root: PathLike, dataset: str = "sketchy") -> ClassSemantics:
    """Read the 300-d word2vec class vectors of Sketchy (125 classes) or TU-Berlin (250 classes).

    Parameters
    ----------
    root:
        folder with ``semantic_labels_<dataset>.npy``, ``vocab_<dataset>.pkl`` (and
        ``zeroshot_classes_sketchy.txt``).
    dataset:
        ``"sketchy"`` or ``"tuberlin"``.

    Returns
    -------
    ClassSemantics
        ``vectors["word_vectors"]`` float32 ``[C, 300]``; for Sketchy ``unseen_classes`` = the 21 zero-shot
        classes (when the file is present), for TU-Berlin ``None`` (its split is drawn, not published).
    """
    if dataset not in ("sketchy", "tuberlin"):
        raise ValueError(f"dataset must be 'sketchy' or 'tuberlin', got {dataset!r}")
    root = require_dir(root, SKETCH_LAYOUT)
    unseen = root / f"zeroshot_classes_{dataset}.txt"
    return read_word_vectors(root / f"semantic_labels_{dataset}.npy", root / f"vocab_{dataset}.pkl",
                             unseen_file=unseen if unseen.is_file() else None)


def attach_semantics(arrays: DatasetArrays, semantics: ClassSemantics, *, vectors: Optional[Sequence[str]] = None,
                     aliases: Optional[Mapping[str, str]] = None, prefix: str = "") -> DatasetArrays:
    """Return a copy of ``arrays`` whose ``class_semantics`` gain rows of ``semantics`` aligned by class name.

    Names are matched after :func:`normalize_class_name`; ``aliases`` maps a dataset class name to the name to
    look up instead (e.g. ``{"automobile": "car_(sedan)"}`` for CIFAR-10 with TU-Berlin vectors).

    Raises
    ------
    KeyError
        when a dataset class has no row, naming the classes and listing near names.

    Example
    -------
    >>> tub = read_sketch_word2vec(".../sketch_word2vec", "tuberlin")                  # doctest: +SKIP
    >>> attach_semantics(cifar, tub, aliases={"automobile": "car_(sedan)", "bird": "flying_bird",
    ...                                       "deer": ...})                            # doctest: +SKIP
    """
    from ._common import MissingKeyError

    aliases = dict(aliases or {})
    table = {normalize_class_name(n): i for i, n in enumerate(semantics.class_names)}
    rows, missing = [], []
    for c in arrays.class_names:
        key = normalize_class_name(aliases.get(c, c))
        if key in table:
            rows.append(table[key])
        else:
            missing.append(c)
    if missing:
        hints = {m: [n for n in semantics.class_names
                     if normalize_class_name(m)[:4] in normalize_class_name(n)][:5] for m in missing}
        raise MissingKeyError(f"{semantics.source}: no vectors for dataset classes {missing} (near names: {hints}); "
                              "pass aliases={dataset_class: semantics_class}")
    names = list(vectors) if vectors is not None else list(semantics.vectors)
    extra = {}
    for n in names:
        if n not in semantics.vectors:
            raise MissingKeyError(f"{semantics.source}: no vectors named {n!r}; found {sorted(semantics.vectors)}")
        extra[prefix + n] = semantics.vectors[n][rows]
    return replace(arrays, class_semantics={**arrays.class_semantics, **extra})

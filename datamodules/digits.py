"""The embedded default dataset: scikit-learn's handwritten digits with every modality the methods need.

Source: ``sklearn.datasets.load_digits()``: 1,797 real 8x8 grey images of handwritten digits (UCI "Optical
Recognition of Handwritten Digits", 43 writers), values 0..16, bundled with scikit-learn: no download and no
file of ours. Everything below is derived from those pixels by fixed rules (no randomness except a fixed,
seed-independent pairing for sketches), so the data are identical on every machine.

Modalities (rows aligned with the images; ``label`` = the digit):

``image``     the 64 pixels scaled to [0, 1].
``text``      a binary bag of "visual words" computed from the image's own pixels (a second view, like
              MIRFlickr's tags): ink level of each of 16 2x2 zones, the number of ink runs crossing each row
              and each column, the number of enclosed holes (loops) of the binarised digit, the centre of mass,
              the ink amount, the bounding-box shape and left-right / top-bottom symmetry (see
              :data:`TEXT_VOCABULARY`). No word is the label; the words are what a human might note about the
              strokes, and they are class-informative only through the shapes (a "loops_2" word is set by an
              8-like shape, not by the label 8). Honest caveat: ``text`` is a deterministic function of ``image``,
              so an image-only model could compute it; it is a realistic, weaker, differently-structured view,
              not independent information.
``sentence``  a sentence-like description built from the same measurements, as token ids padded to 12 tokens
              with ``<eos>`` at its end (TVDB's text input): e.g. "bold narrow digit with one loop ink top
              centre widest bottom <eos>". Served as float tensors of exact integer ids; the vocabulary is
              :data:`SENTENCE_VOCABULARY` (id 0 = ``<pad>``), also on ``DigitsDataModule.vocabularies``.
``regions``   (only when asked for, e.g. ``modalities=("regions", "sentence")``: TVDB's image input) K + 1 = 9
              region vectors per image, ``[n, 9, 8]``: the weight-free pipeline of
              :mod:`lightning_hash.features.regions` (:func:`~lightning_hash.features.regions.digit_regions`)
              on the 8x8 image: 13 grid windows (4x4 and 6x6 pixels) scored by their ink (saliency =
              intensity), the K = 8 with the highest attraction score ``(c_k + d_k) / 2`` in decreasing order,
              each area-averaged to 2x2 (4 values) plus its 4 box numbers (normalised height, width, centre x,
              centre y), then the whole image (also 2x2, box ``1, 1, 0.5, 0.5``) last. The same 2x2 "backbone"
              sees a 4x4 window in more detail than the whole image, as a CNN with a fixed input size sees a
              small region (at 4x4 the whole digit is already fully legible and regions add nothing; see
              ``digit_regions``). Not part of the arrays otherwise, so the data fingerprint of the other
              modalities' splits does not change.
``sketch``    a line drawing of a DIFFERENT image of the same class: the image upsampled to 16x16, binarised,
              and reduced to its outline (binary minus its erosion), 256 values in {0, 1}. Row ``i``'s sketch
              comes from another writer's digit of the same class (a fixed derangement within each class), so
              an image and a sketch in a row share the class, not the instance, as in sketch-based retrieval.

Class semantics (``class_semantics``):

``attributes``    12 hand-defined binary shape attributes per digit (:data:`ATTRIBUTE_NAMES`,
                  :data:`DIGIT_ATTRIBUTES`), written from how the ten digits are usually drawn, not learned.
``word_vectors``  64-d vectors of the English class names ("zero".."nine") by hashing their character
                  1-3-grams (with word-boundary marks) into signed buckets, L2-normalised. Honest caveat: they
                  carry spelling, not meaning (no corpus is bundled); they stand in for word2vec vectors so the
                  code paths that need class-name vectors run, but zero-shot transfer through them is weak.

Zero-shot hold-out (:data:`DEFAULT_UNSEEN`): digits three, six and nine are unseen. Chosen so that every
attribute is on for at least one seen digit and off for at least one (an attribute never seen "on" cannot be
learned) and the three unseen attribute vectors are distinct from each other and from every seen digit.
"""
from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Dict, List, Tuple

import numpy as np

from .arrays import DatasetArrays

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DEFAULT_UNSEEN = ("three", "six", "nine")
SENTENCE_LENGTH = 12
WORD_VECTOR_DIM = 64
SKETCH_SIZE = 16

#: the hand-defined binary attributes, in column order
ATTRIBUTE_NAMES = [
    "closed_loop",        # at least one enclosed loop
    "two_loops",          # two enclosed loops
    "loop_top",           # a loop in the upper half
    "loop_bottom",        # a loop in the lower half
    "vertical_stroke",    # a long (near) vertical straight stroke
    "horizontal_top",     # a straight horizontal bar at the top
    "horizontal_middle",  # a straight horizontal bar across the middle
    "horizontal_bottom",  # a straight horizontal bar at the bottom
    "diagonal_stroke",    # a long diagonal straight stroke
    "curve_top",          # a rounded arc at the top
    "curve_bottom",       # a rounded arc at the bottom
    "symmetric_lr",       # roughly left-right symmetric
]
_ON = {
    "zero": ["closed_loop", "curve_top", "curve_bottom", "symmetric_lr"],
    "one": ["vertical_stroke", "symmetric_lr"],
    "two": ["horizontal_bottom", "diagonal_stroke", "curve_top"],
    "three": ["curve_top", "curve_bottom"],
    "four": ["vertical_stroke", "horizontal_middle", "diagonal_stroke"],
    "five": ["horizontal_top", "vertical_stroke", "curve_bottom"],
    "six": ["closed_loop", "loop_bottom", "curve_top", "curve_bottom"],
    "seven": ["horizontal_top", "diagonal_stroke"],
    "eight": ["closed_loop", "two_loops", "loop_top", "loop_bottom", "curve_top", "curve_bottom", "symmetric_lr"],
    "nine": ["closed_loop", "loop_top", "vertical_stroke", "curve_top"],
}
#: ``[10, 12]`` float 0/1 attribute matrix, rows in class order
DIGIT_ATTRIBUTES = np.array([[1.0 if a in _ON[c] else 0.0 for a in ATTRIBUTE_NAMES] for c in CLASS_NAMES],
                            dtype=np.float32)

_INK = 0.5          # a pixel (scaled to [0, 1]) counts as ink from this value


# ----------------------------------------------------------------------------------------------- measurements
def _runs(line: np.ndarray) -> int:
    """Number of maximal ink runs along a 1-d boolean line."""
    padded = np.concatenate([[False], line, [False]])
    return int(np.sum(padded[1:] & ~padded[:-1]))


def _holes(ink: np.ndarray) -> int:
    """Enclosed background regions (4-connected) of a binary image: 0 for '1', 1 for '0', 2 for '8'."""
    from scipy import ndimage
    background = np.pad(~ink, 1, constant_values=True)
    regions, count = ndimage.label(background)          # default structure: 4-connectivity
    outside = regions[0, 0]
    return int(sum(1 for r in range(1, count + 1) if r != outside))


def _measure(img: np.ndarray) -> Dict[str, object]:
    """The shape measurements of one 8x8 image in [0, 1] that both text views are built from."""
    ink = img >= _INK
    total = float(img.sum())
    rows_idx, cols_idx = np.nonzero(ink)
    ys, xs = np.mgrid[0:8, 0:8]
    cy = float((img * ys).sum() / total) if total > 0 else 3.5
    cx = float((img * xs).sum() / total) if total > 0 else 3.5
    height = int(rows_idx.max() - rows_idx.min() + 1) if rows_idx.size else 0
    width = int(cols_idx.max() - cols_idx.min() + 1) if cols_idx.size else 0
    row_width = ink.sum(axis=1)
    widest = int(np.argmax(row_width))
    lr = 1.0 - float(np.abs(img - img[:, ::-1]).sum()) / max(2 * total, 1e-9)
    tb = 1.0 - float(np.abs(img - img[::-1, :]).sum()) / max(2 * total, 1e-9)
    return dict(ink=ink, total=total, cy=cy, cx=cx, height=height, width=width, widest=widest, lr=lr, tb=tb,
                holes=_holes(ink), row_runs=[_runs(ink[r]) for r in range(8)],
                col_runs=[_runs(ink[:, c]) for c in range(8)])


def _third(value: float, low: float, high: float, names: Tuple[str, str, str]) -> str:
    return names[0] if value < low else (names[1] if value < high else names[2])


# ----------------------------------------------------------------------------------------------- text (bag of words)
def _text_vocabulary() -> List[str]:
    words = [f"zone{r}{c}_{lvl}" for r in range(4) for c in range(4) for lvl in ("some", "full")]
    words += [f"row{r}_runs{k}" for r in range(8) for k in ("1", "2", "3+")]
    words += [f"col{c}_runs{k}" for c in range(8) for k in ("1", "2", "3+")]
    words += ["loops_0", "loops_1", "loops_2+"]
    words += ["mass_top", "mass_middle", "mass_bottom", "mass_left", "mass_centre", "mass_right"]
    words += ["ink_light", "ink_medium", "ink_heavy", "shape_narrow", "shape_wide", "shape_short", "shape_tall"]
    words += ["symmetric_lr", "symmetric_tb"]
    return words


#: the words of the ``text`` bag, in column order
TEXT_VOCABULARY = _text_vocabulary()
_TEXT_INDEX = {w: i for i, w in enumerate(TEXT_VOCABULARY)}


def _text_words(img: np.ndarray, m: Dict[str, object]) -> List[str]:
    words = []
    for r in range(4):
        for c in range(4):
            level = float(img[2 * r:2 * r + 2, 2 * c:2 * c + 2].mean())
            if level >= 0.6:
                words.append(f"zone{r}{c}_full")
            elif level >= 0.15:
                words.append(f"zone{r}{c}_some")
    for kind, runs in (("row", m["row_runs"]), ("col", m["col_runs"])):
        for i, k in enumerate(runs):
            if k:
                words.append(f"{kind}{i}_runs{k if k < 3 else '3+'}")
    holes = int(m["holes"])
    words.append(f"loops_{holes if holes < 2 else '2+'}")
    words.append("mass_" + _third(m["cy"], 3.0, 4.0, ("top", "middle", "bottom")))
    words.append("mass_" + _third(m["cx"], 3.0, 4.0, ("left", "centre", "right")))
    words.append("ink_" + _third(m["total"], 18.0, 24.0, ("light", "medium", "heavy")))
    words.append("shape_narrow" if m["width"] <= 5 else "shape_wide")
    words.append("shape_short" if m["height"] <= 6 else "shape_tall")
    if m["lr"] >= 0.6:
        words.append("symmetric_lr")
    if m["tb"] >= 0.6:
        words.append("symmetric_tb")
    return words


# ----------------------------------------------------------------------------------------------- sentences
#: token id -> word for ``sentence`` (0 = padding)
SENTENCE_VOCABULARY = ["<pad>", "<eos>", "thin", "medium", "bold", "narrow", "wide", "digit", "with", "no", "one",
                       "two", "loop", "loops", "ink", "top", "middle", "bottom", "left", "centre", "right",
                       "widest"]
_SENTENCE_INDEX = {w: i for i, w in enumerate(SENTENCE_VOCABULARY)}


def _sentence(m: Dict[str, object]) -> List[str]:
    holes = int(m["holes"])
    return [_third(m["total"], 18.0, 24.0, ("thin", "medium", "bold")),
            "narrow" if m["width"] <= 5 else "wide", "digit", "with",
            ("no", "one", "two")[min(holes, 2)], "loop" if holes == 1 else "loops", "ink",
            _third(m["cy"], 3.0, 4.0, ("top", "middle", "bottom")),
            _third(m["cx"], 3.0, 4.0, ("left", "centre", "right")), "widest",
            _third(float(m["widest"]), 3.0, 5.0, ("top", "middle", "bottom")), "<eos>"]


def encode_sentence(words: List[str], length: int = SENTENCE_LENGTH) -> np.ndarray:
    """Token ids of a sentence, truncated to ``length`` with ``<eos>`` kept last, padded with 0.

    >>> encode_sentence(["bold", "digit", "<eos>"], 5).tolist()
    [4, 7, 1, 0, 0]
    """
    ids = [_SENTENCE_INDEX[w] for w in words if w != "<eos>"][:length - 1] + [_SENTENCE_INDEX["<eos>"]]
    return np.array(ids + [0] * (length - len(ids)), dtype=np.int64)


# ----------------------------------------------------------------------------------------------- sketches
def sketch_partners(labels: np.ndarray) -> np.ndarray:
    """For each row, another row of the same class (a fixed derangement within each class).

    Fixed (seed 0, independent of the split seed): the data must not change with the run's seed.
    """
    rng = np.random.RandomState(0)
    partner = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 2:
            raise ValueError(f"class {c} has a single image; a sketch must come from a different image")
        order = rows[rng.permutation(len(rows))]
        partner[order] = np.roll(order, -1)
    return partner


def outline_sketches(images: np.ndarray) -> np.ndarray:
    """Outline drawings ``[n, 256]`` in {0, 1}: upsample to 16x16, binarise, keep the boundary pixels."""
    from scipy import ndimage
    big = ndimage.zoom(images, (1, SKETCH_SIZE // 8, SKETCH_SIZE // 8), order=1)
    ink = big >= 0.4
    eroded = ndimage.binary_erosion(ink, structure=np.ones((1, 3, 3), dtype=bool))
    return (ink & ~eroded).reshape(len(images), -1).astype(np.float32)


# ----------------------------------------------------------------------------------------------- word vectors
def name_vectors(names: List[str], dim: int = WORD_VECTOR_DIM) -> np.ndarray:
    """Character 1-3-gram hashing vectors of words, L2-normalised (deterministic; spelling, not meaning)."""
    out = np.zeros((len(names), dim), dtype=np.float64)
    for i, name in enumerate(names):
        padded = f"<{name}>"
        for n in (1, 2, 3):
            for j in range(len(padded) - n + 1):
                h = zlib.crc32(padded[j:j + n].encode())
                out[i, h % dim] += 1.0 if (h >> 16) & 1 else -1.0
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------------------------------------- the dataset
def load_digits_arrays(regions: bool = False) -> DatasetArrays:
    """All digits modalities and class semantics as a :class:`DatasetArrays` (no file, no network).

    ``regions=True`` adds the ``regions`` modality (TVDB's region sequences, see the module docstring).
    """
    from sklearn.datasets import load_digits
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)          # [1797, 8, 8]
    labels = bunch.target.astype(np.int64)
    n = len(labels)
    text = np.zeros((n, len(TEXT_VOCABULARY)), dtype=np.float32)
    sentence = np.zeros((n, SENTENCE_LENGTH), dtype=np.int64)
    for i in range(n):
        m = _measure(images[i])
        text[i, [_TEXT_INDEX[w] for w in _text_words(images[i], m)]] = 1.0
        sentence[i] = encode_sentence(_sentence(m))
    sketch = outline_sketches(images)[sketch_partners(labels)]
    modalities = {"image": images.reshape(n, 64), "text": text, "sentence": sentence, "sketch": sketch}
    if regions:
        from lightning_hash.features.regions import digit_regions
        modalities["regions"] = digit_regions(images)
    return DatasetArrays(
        modalities=modalities,
        labels=labels, class_names=list(CLASS_NAMES),
        class_semantics={"attributes": DIGIT_ATTRIBUTES.copy(), "word_vectors": name_vectors(CLASS_NAMES)},
        source="sklearn.datasets.load_digits")


@lru_cache(maxsize=2)
def cached_digits_arrays(regions: bool = False) -> DatasetArrays:
    """:func:`load_digits_arrays`, computed once per process (DataModules never modify their arrays)."""
    return load_digits_arrays(regions)

"""A seeded synthetic dataset with known structure, for fast tests.

Generative model (all draws from ``numpy.random.RandomState(seed)``):

* ``C`` class prototypes ``p_c ~ N(0, I_k)`` in a latent space of dimension ``k``;
* item ``i`` with label(s) ``y_i``: latent ``z_i = mean_{c in y_i} p_c + noise * e_i``, ``e_i ~ N(0, I_k)``;
* two modalities, linear views of the same latent: ``image_i = z_i A`` and ``text_i = z_i B`` with fixed
  random maps ``A`` (``k x d_image``) and ``B`` (``k x d_text``), plus optional independent view noise.

So the relation between the modalities is known exactly: with ``d_image >= k`` and no view noise,
``text = image A^+ B`` (``A^+`` the pseudo-inverse), and retrieval by class is learnable from either view.
Class semantics: ``"prototypes"`` (the ``p_c`` themselves) and ``"attributes"`` (the prototypes' signs as
0/1), so zero-shot methods have class vectors that truly describe the classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional

import numpy as np

from .arrays import DatasetArrays


@dataclass
class SyntheticTruth:
    """The generating parameters, for tests that check a method recovers the structure."""

    prototypes: np.ndarray          # [C, k]
    maps: Dict[str, np.ndarray]     # modality -> [k, d]
    latents: np.ndarray             # [n, k]


def make_synthetic(n_items: int = 600, n_classes: int = 6, dims: Optional[Mapping[str, int]] = None,
                   latent_dim: int = 8, noise: float = 0.3, view_noise: float = 0.0, multi_label: bool = False,
                   max_labels: int = 3, seed: int = 0, return_truth: bool = False):
    """Draw a synthetic cross-modal dataset.

    Parameters
    ----------
    n_items, n_classes: size.
    dims: modality -> feature dimension; default ``{"image": 32, "text": 24}``.
    latent_dim: dimension ``k`` of the shared latent space.
    noise: within-class spread of the latents (relative to the unit-variance prototypes).
    view_noise: independent Gaussian noise added to each modality.
    multi_label: items carry 1..``max_labels`` labels (multi-hot labels) instead of one.
    seed: the only source of randomness.
    return_truth: also return a :class:`SyntheticTruth`.

    Returns
    -------
    DatasetArrays, or ``(DatasetArrays, SyntheticTruth)``.

    >>> data = make_synthetic(n_items=60, n_classes=3, seed=1)
    >>> data.modalities["image"].shape, data.modalities["text"].shape, data.num_classes
    ((60, 32), (60, 24), 3)
    """
    dims = dict(dims or {"image": 32, "text": 24})
    if n_items < n_classes or n_classes < 2:
        raise ValueError(f"need n_classes >= 2 and n_items >= n_classes, got {n_items} items, {n_classes} classes")
    if not dims or any(int(d) < 1 for d in dims.values()):
        raise ValueError(f"dims must map modality names to positive dimensions, got {dims}")
    if noise < 0 or view_noise < 0:
        raise ValueError(f"noise and view_noise must be >= 0, got {noise}, {view_noise}")
    rng = np.random.RandomState(seed)
    prototypes = rng.randn(n_classes, latent_dim)
    maps = {m: rng.randn(latent_dim, int(d)) / np.sqrt(latent_dim) for m, d in dims.items()}
    if multi_label:
        labels = np.zeros((n_items, n_classes), dtype=np.float32)
        labels[np.arange(n_items), np.arange(n_items) % n_classes] = 1.0   # every class used
        for i in range(n_items):
            extra = rng.randint(0, max_labels)
            labels[i, rng.choice(n_classes, size=extra, replace=False)] = 1.0
        centres = (labels @ prototypes) / labels.sum(axis=1, keepdims=True)
    else:
        labels = (np.arange(n_items) % n_classes)[rng.permutation(n_items)].astype(np.int64)
        centres = prototypes[labels]
    latents = centres + noise * rng.randn(n_items, latent_dim)
    modalities = {}
    for m, a in maps.items():
        x = latents @ a
        if view_noise:
            x = x + view_noise * rng.randn(*x.shape)
        modalities[m] = x.astype(np.float32)
    arrays = DatasetArrays(
        modalities=modalities, labels=labels, class_names=[f"class{c}" for c in range(n_classes)],
        class_semantics={"prototypes": prototypes.astype(np.float32),
                         "attributes": (prototypes > 0).astype(np.float32)},
        source=f"synthetic(n_items={n_items}, n_classes={n_classes}, seed={seed})")
    if return_truth:
        return arrays, SyntheticTruth(prototypes=prototypes, maps=maps, latents=latents)
    return arrays

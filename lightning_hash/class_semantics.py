"""Reading class-level semantics (attributes, class word vectors) from a DataModule, for the zero-shot methods.

One place for what AgNet, VSB2-Net and ZSIH all need in ``setup()``: the ``[C, d]`` matrix
``dm.class_semantics[key]`` with one finite, non-zero row per class (a clear error naming the missing classes
otherwise), which classes a zero-shot split lets the model train on, and (for the methods that need one class
per item) the refusal of multi-label data.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch


def class_matrix(dm, key: str, what: str, owner: str, argument: Optional[str] = None) -> torch.Tensor:
    """``dm.class_semantics[key]`` as a float ``[C, d]`` tensor, every class with a usable row.

    ``what`` names one row in the messages (e.g. ``"word vector"``, ``"attribute"``), ``owner`` the caller
    (the method's name), ``argument`` the constructor argument that chose ``key``. ``ValueError`` when the key is
    missing, the shape is not one row per class, or a class's row is all-zero or non-finite (naming the classes).

    Examples
    --------
    >>> class DM:
    ...     class_names = ["a", "b"]
    ...     class_semantics = {"word_vectors": torch.tensor([[1.0, 0.0], [0.0, 0.0]])}
    >>> class_matrix(DM(), "word_vectors", "word vector", "demo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: demo: classes ['b'] have no word vector in 'word_vectors' (all-zero or non-finite row); ...
    """
    sem = getattr(dm, "class_semantics", {}) or {}
    if key not in sem:
        via = f" ({argument})" if argument else ""
        raise ValueError(f"{owner}: the datamodule has no class {what}s '{key}'{via}; its class semantics are "
                         f"{sorted(sem)}")
    M = torch.as_tensor(sem[key]).float()
    names = list(getattr(dm, "class_names", []) or [str(i) for i in range(M.shape[0])])
    if M.ndim != 2 or M.shape[0] != len(names):
        raise ValueError(f"{owner}: class {what}s '{key}' have shape {tuple(M.shape)}, expected one row per class "
                         f"({len(names)} classes)")
    empty = ~torch.isfinite(M).all(dim=1) | (M.abs().sum(dim=1) == 0)
    if empty.any():
        bad = [names[i] for i in torch.nonzero(empty).flatten().tolist()]
        raise ValueError(f"{owner}: classes {bad} have no {what} in '{key}' (all-zero or non-finite row); every class "
                         "needs one")
    return M


def seen_class_mask(dm, num_classes: int) -> torch.Tensor:
    """Bool ``[num_classes]``: the seen classes of ``dm``'s zero-shot split, or every class without one."""
    split = getattr(dm, "split", None)
    if split is None or not getattr(split, "zero_shot", False):
        return torch.ones(num_classes, dtype=torch.bool)
    seen = torch.zeros(num_classes, dtype=torch.bool)
    seen[torch.as_tensor(split.seen_classes)] = True
    return seen


def outside_classes(labels: torch.Tensor, allowed: torch.Tensor) -> List[int]:
    """The class indices outside ``allowed`` (bool ``[C]``) that some row of ``labels`` carries (multi-hot
    ``[n, C]``, or class indices ``[n]``), sorted.

    >>> allowed = torch.tensor([True, False, True])
    >>> outside_classes(torch.tensor([[1, 0, 0], [0, 1, 1]]), allowed), outside_classes(torch.tensor([2, 0]), allowed)
    ([1], [])
    """
    allowed = allowed.to(labels.device)
    if labels.ndim == 1:
        cls = labels.long()
        return sorted(set(cls[~allowed[cls]].tolist()))
    present = (labels > 0).any(dim=0)
    return torch.nonzero(present & ~allowed).flatten().tolist()


def require_training_classes(labels: torch.Tensor, allowed: torch.Tensor, owner: str, what: str = "unseen",
                             class_names: Optional[Sequence[str]] = None, where: str = "a training batch") -> None:
    """The zero-shot rule, in one place: training items carry only ``allowed`` classes (the seen classes, minus
    any held out for validation). Raises ``ValueError`` naming the offending classes otherwise."""
    bad = outside_classes(labels, allowed)
    if bad:
        names = [class_names[c] for c in bad] if class_names is not None else bad
        raise ValueError(f"{owner}: {where} holds items of classes {names} that are {what} (unseen classes are "
                         "not trained on); a zero-shot model trains on its training classes only")


def require_training_split_classes(dm, allowed: torch.Tensor, owner: str, what: str = "unseen") -> None:
    """:func:`require_training_classes` on a DataModule's whole training split (read through the contract's
    ``item_labels``), before training starts."""
    split = getattr(dm, "split", None)
    if split is None or not hasattr(dm, "item_labels"):
        return
    labels = torch.as_tensor(dm.item_labels(split.train))
    require_training_classes(labels, allowed, owner, what, class_names=list(getattr(dm, "class_names", []) or [])
                             or None, where="the training data")


def require_single_label(labels: torch.Tensor, owner: str, instead: str, where: str = "a training batch",
                         protocol: Optional[str] = None) -> None:
    """The rule of the methods that need one class per item (e.g. a class-index target): every row of ``labels``
    (multi-hot ``[n, C]``; class indices ``[n]`` always pass) carries exactly one class. Raises ``ValueError``
    saying how many rows do not, that multi-label (zero-shot) data is not supported, and ``instead`` (what to use).

    >>> require_single_label(torch.tensor([[1, 0], [1, 1]]), "demo", "use another method")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: demo: needs single-label items (one class per item), but 1 of the 2 items of a training batch carry ...
    """
    if labels.ndim == 1:
        return
    counts = (labels > 0).sum(dim=1)
    bad = counts != 1
    if bool(bad.any()):
        found = sorted(set(counts[bad].tolist()))
        via = f" (protocol '{protocol}')" if protocol else ""
        raise ValueError(f"{owner}: needs single-label items (one class per item), but {int(bad.sum())} of the "
                         f"{labels.shape[0]} items of {where}{via} carry {found} classes: multi-label data is not "
                         f"supported; {instead}")


def require_single_label_split(dm, owner: str, instead: str) -> None:
    """:func:`require_single_label` on a DataModule's whole training split (read through the contract's
    ``item_labels``), before training starts."""
    split = getattr(dm, "split", None)
    if split is None or not hasattr(dm, "item_labels"):
        return
    require_single_label(torch.as_tensor(dm.item_labels(split.train)), owner, instead, where="the training data",
                         protocol=getattr(split, "protocol", None))

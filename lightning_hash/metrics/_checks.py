"""Input checks and preparation shared by every metric: validated codes, labels and conventions.

``_prepare`` turns the public inputs (codes in any of the accepted encodings, class-index or multi-hot labels)
into a :class:`_Problem` of int8 bits and a relevance definition on one device; every public function calls it
(or :func:`_prepare_codes`) first, so the same input gives the same error everywhere.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import Tensor

from ._products import _row_counts


#: Default tie handling of the ranking metrics (see :mod:`lightning_hash.metrics.functional` for why).
DEFAULT_TIE_BREAK = "average"
_TIE_BREAKS = ("average", "index")
_EMPTY_QUERIES = ("zero", "skip", "error")
_TOP_K_MODES = ("ranks", "hits")
_AVERAGES = ("macro", "micro")
_MAX_ONE_HOT_CLASSES = 128


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_int(name: str, value: object, minimum: int) -> int:
    """An integer (Python, numpy or 0-d integer tensor; not bool) >= minimum, else ValueError naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _check_positive_int(name: str, value: object) -> int:
    return _check_int(name, value, 1)


def _check_ks(ks: object) -> list:
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise ValueError(f"ks must be a sequence of positive ranks, got {ks!r}")
    ks = [_check_positive_int("ks entry", k) for k in ks]
    if not ks:
        raise ValueError("ks is empty: give at least one rank")
    return ks


def _codes_to_bits(codes: object, name: str) -> Tensor:
    """Validate binary codes [n, bits] (bool, {0, 1} or {-1, +1}) and return them as int8 bits in {0, 1}."""
    if not isinstance(codes, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [n, bits], got {type(codes).__name__}")
    if codes.dim() != 2:
        raise ValueError(f"{name} must have shape [n, bits], got shape {tuple(codes.shape)}")
    if codes.shape[1] == 0:
        raise ValueError(f"{name} has 0 bits (shape {tuple(codes.shape)})")
    if codes.is_complex():
        raise ValueError(f"{name} must be real (bool, {{0,1}} or {{-1,+1}}), got dtype {codes.dtype}")
    if codes.dtype == torch.bool:
        return codes.to(torch.int8)
    if codes.numel() == 0:
        return codes.to(torch.int8)
    ones = codes == 1
    if bool(torch.logical_or(ones, codes == -1).all()) or bool(torch.logical_or(ones, codes == 0).all()):
        return ones.view(torch.int8)  # {-1, +1} or {0, 1}
    if codes.is_floating_point() and bool(torch.isnan(codes).any()):
        raise ValueError(f"{name} contains NaN")
    raise ValueError(
        f"{name} must be binary: bool, values in {{0, 1}} or values in {{-1, +1}} (apply sign() or > 0 first); "
        f"found other values"
    )


@dataclass
class _Labels:
    """Relevance definition: ``dot`` (multi-hot, relevant iff overlap > 0) or ``eq`` (class indices)."""

    kind: str
    query: Tensor  # dot: int8 [Q, C]; eq: int64 [Q]
    db: Tensor  # dot: int8 [N, C]; eq: int64 [N]
    max_overlap: int  # dot only: an upper bound of the label overlap of a pair


def _prepare_labels(query_labels: object, db_labels: object, n_query: int, n_db: int, device) -> _Labels:
    for name, lab, n in (("query_labels", query_labels, n_query), ("db_labels", db_labels, n_db)):
        if not isinstance(lab, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor ([n] class indices or [n, C] multi-hot)")
        if lab.dim() not in (1, 2):
            raise ValueError(f"{name} must be [n] class indices or [n, C] multi-hot, got shape {tuple(lab.shape)}")
        if lab.shape[0] != n:
            codes_name = "query_codes" if name == "query_labels" else "db_codes"
            raise ValueError(f"{name} has {lab.shape[0]} rows but {codes_name} has {n} rows")
        if lab.device != device:
            raise ValueError(f"{name} is on {lab.device} but the codes are on {device}")
    if query_labels.dim() != db_labels.dim():
        raise ValueError(
            f"query_labels ({query_labels.dim()}-D) and db_labels ({db_labels.dim()}-D) must both be class indices "
            f"[n] or both multi-hot [n, C]"
        )
    if query_labels.dim() == 1:
        for name, lab in (("query_labels", query_labels), ("db_labels", db_labels)):
            if lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
                raise ValueError(f"{name} as a 1-D tensor must hold integer class indices, got dtype {lab.dtype}")
        q, d = query_labels.long(), db_labels.long()
        classes, inverse = torch.unique(torch.cat([q, d]), return_inverse=True)
        n_classes = classes.numel()
        if 0 < n_classes <= _MAX_ONE_HOT_CLASSES:
            one_hot = torch.nn.functional.one_hot(inverse, n_classes).to(torch.int8)
            return _Labels("dot", one_hot[:n_query], one_hot[n_query:], 1)
        return _Labels("eq", q, d, 1)
    if query_labels.shape[1] != db_labels.shape[1]:
        raise ValueError(
            f"query_labels has {query_labels.shape[1]} label columns but db_labels has {db_labels.shape[1]}"
        )
    out = []
    for name, lab in (("query_labels", query_labels), ("db_labels", db_labels)):
        if lab.is_complex():
            raise ValueError(f"{name} must be multi-hot with values in {{0, 1}}, got dtype {lab.dtype}")
        if lab.dtype == torch.bool:
            out.append(lab.view(torch.int8))
            continue
        ones = lab == 1
        if lab.numel() and not bool(torch.logical_or(ones, lab == 0).all()):
            if lab.is_floating_point() and bool(torch.isnan(lab).any()):
                raise ValueError(f"{name} contains NaN")
            raise ValueError(f"{name} must be multi-hot with values in {{0, 1}} (or class indices [n])")
        out.append(ones.view(torch.int8))
    ql, dl = out
    max_q = int(_row_counts(ql).max()) if ql.numel() else 0
    max_d = int(_row_counts(dl).max()) if dl.numel() else 0
    return _Labels("dot", ql, dl, min(max_q, max_d))


@dataclass
class _Problem:
    """Validated inputs on one device."""

    q_codes: Tensor  # int8 bits in {0, 1} [Q, B]
    d_codes: Tensor  # int8 bits in {0, 1} [N, B]
    labels: _Labels
    bits: int
    device: torch.device

    @property
    def n_query(self) -> int:
        return self.q_codes.shape[0]

    @property
    def n_db(self) -> int:
        return self.d_codes.shape[0]


def _prepare_codes(query_codes: object, db_codes: object) -> tuple[Tensor, Tensor]:
    q = _codes_to_bits(query_codes, "query_codes")
    d = _codes_to_bits(db_codes, "db_codes")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"query_codes have {q.shape[1]} bits but db_codes have {d.shape[1]} bits")
    if q.device != d.device:
        raise ValueError(f"query_codes are on {q.device} but db_codes are on {d.device}")
    if d.shape[0] == 0:
        raise ValueError("db_codes is empty: the database needs at least one item")
    if q.shape[0] == 0:
        raise ValueError("query_codes is empty: at least one query is needed")
    if q.device.type == "mps":  # no float64 on MPS: compute on the CPU
        q, d = q.cpu(), d.cpu()
    return q, d


def _prepare(query_codes, db_codes, query_labels, db_labels) -> _Problem:
    q, d = _prepare_codes(query_codes, db_codes)
    if isinstance(query_labels, Tensor) and query_labels.device.type == "mps":
        query_labels = query_labels.cpu()
    if isinstance(db_labels, Tensor) and db_labels.device.type == "mps":
        db_labels = db_labels.cpu()
    labels = _prepare_labels(query_labels, db_labels, q.shape[0], d.shape[0], q.device)
    return _Problem(q, d, labels, q.shape[1], q.device)


def _check_empty(has_relevant: Tensor, empty_queries: str) -> None:
    if empty_queries == "zero":
        return
    n_empty = int((~has_relevant).sum())
    if empty_queries == "error" and n_empty:
        raise ValueError(
            f"{n_empty} of {has_relevant.numel()} queries have no relevant database item (empty_queries='error'); "
            f"use empty_queries='zero' to count them as 0 or 'skip' to leave them out"
        )
    if n_empty == has_relevant.numel():
        raise ValueError(
            "no query has a relevant database item, so the mean over non-empty queries is undefined "
            "(empty_queries='skip')"
        )


def _mean_over_queries(values: Tensor, has_relevant: Tensor, empty_queries: str) -> Tensor:
    _check_empty(has_relevant, empty_queries)
    if empty_queries == "skip":
        return values[has_relevant].mean()
    return torch.where(has_relevant, values, torch.zeros_like(values)).mean()

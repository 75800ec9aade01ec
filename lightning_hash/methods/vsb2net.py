"""VSB2-Net: Visual-Semantic Bi-Branch Network for zero-shot hashing, reconstructed from the slides and abstract.

Paper: X. Li, X. Wang, B. Jin, W. Zhang, J. Wang, H. Zha, "VSB2-Net: Visual-Semantic Bi-Branch Network for
Zero-Shot Hashing", ICPR 2020 (``shared/papers/vsb2net_slides.md``, ``vsb2net_abstract.txt``). Only the slides
and the abstract are public and nobody has released code: everything below that the slides do not fix is a
reconstruction, listed under "Decisions the slides leave open".

What the slides give
--------------------
Both the class semantic space (word vectors ``w``) and the visual space are embedded into one Hamming space.

* **Semantic similarity branch**: each training class word vector ``w^l`` -> a semantic Hamming vector ``s^l``.
  Cosine similarity between word vectors; K-nearest-neighbour grouping of the L training word vectors into T
  groups ``N_t``; loss (slides)::

      L_s = alpha sum_t sum_{i,j in N_t} ||Sim(w_i, w_j) - Sim(s_i, s_j)||^2          (S1, within groups)
          + beta  sum_{t1 != t2} max(0, lambda - ||BC(N_t1) - BC(N_t2)||^2)          (S2, barycentres)
          + gamma sum_i || |s_i| - e ||_1                                            (S3, |s| -> 1)

  implemented by :func:`within_group_similarity_loss` (S1), :func:`barycentre_margin_loss` (S2),
  :func:`quantization_l1_loss` (S3), combined by :func:`semantic_loss`; the grouping is :func:`knn_groups`.
* **Visual feature transfer branch**: image -> code ``b``; dot products with the class semantic vectors::

      L_t = sum_i max(0, m - b_i^T s^{l_i} + max_{l_j != l_i} b_i^T s^{l_j})                 (T1)

  :func:`transfer_ranking_loss`.
* **Task-driven regularisation**: a reconstruction module (codes reconstruct the visual features,
  :func:`reconstruction_loss`) and a classification module that "drives the error hash codes near the target
  semantic vector" (:func:`classification_pull_loss`).
* Variants named in the tables: VSB2-Net vs VSB2-G ("two reconstructive space methods"), Mini-VSB2-Net vs
  Mini-SitNet ("two mapping modes"); parameter study over alpha, beta in {1, 0.1, 0.01} at 64 bits.

Decisions the slides leave open, and how they are settled here
---------------------------------------------------------------
1. **Networks.** Image branch ``x -> mlp(image_hidden) -> tanh`` (relaxed code ``b`` in ``(-1, 1)^bits``; the code
   is ``sign(b)``). Semantic branch ``w -> mlp(semantic_hidden) -> tanh`` (``s``); it is a *network* (not a free
   vector per class) so that an unseen class's word vector gets a semantic Hamming vector (TBIR queries). Sizes
   ``image_hidden=[1024]`` (as AgNet's V2A first layer) and ``semantic_hidden=[]`` (one linear layer: with 5-8
   training classes, a hidden layer could place them anywhere and nothing would tie the unseen word vectors to
   them); not tuned.
2. **Sim(s_i, s_j)**: cosine similarity, as for the word vectors (same range, so S1 compares like with like).
3. **KNN grouping** (:func:`knn_groups`): deterministic, balanced. Group sizes ``L // T`` (the first ``L % T``
   groups one larger). Seeds by farthest-point traversal in cosine similarity, starting at the class least
   similar on average to the others; then each group in turn takes its seed's nearest unassigned non-seed
   classes (its K nearest neighbours, K = size - 1). Ties go to the lower class index. Computed once in
   ``setup()`` from the training classes' word vectors (a pure function of the data and T, so a resumed run
   gets the same groups); ``T > L`` is a ``ValueError``.
4. **S1 pairs**: ordered pairs ``(i, j)`` of a group, ``i = j`` included as printed (with cosine they add 0).
   **S2** sums over ordered group pairs as printed (each unordered pair twice); the barycentre is the mean of
   the group's ``s``. **S3** sums over the L training classes (the slide's ``sum_{i=1}^{T}`` indexes classes
   with ``l_i``; T is read as a typo for L).
5. **Normalisation.** The pure functions implement the printed sums (``reduction="sum"``) and a per-pair /
   per-item mean (``reduction="mean"``). The module uses the means and divides every term that grows with the
   code length by ``bits``: ``lambda = lambda_ratio * bits`` and S2 / bits; ``m = margin * bits`` and T1 / bits;
   S3 / bits. So ``margin`` is a fraction of the code length (for binary vectors, ``margin = 4 d / bits`` asks the
   true class to be ``d`` Hamming bits closer than any other) and alpha, beta, gamma weigh terms of comparable
   size, which is what a parameter study over {1, 0.1, 0.01} needs. T1 uses the relaxed ``b`` and ``s`` (tanh
   outputs). Chosen on the seen-class validation split (2 seen classes held out, digits and CUB-10, 64 bits;
   the former ``bench_vsb2net.py --tune``, now ``experiments/grids/vsb2net_select.yaml``): ``margin = 0.0625`` (of 0.5, 0.25, 0.125, 0.0625: smaller was better for VSB2-Net
   and the no-semantics baseline alike), ``num_groups = 2`` (of 2, 3), ``lambda_ratio = 1``, alpha = beta = gamma
   = 0.1 (the slides' best cell is alpha = beta = 0.1; gamma is not studied there); Mini-SitNet's
   ``semantic_margin = 0.3`` (of 0.05, 0.1, 0.3, best mean over the two datasets).
6. **Classification module**: read literally, "drive the error hash codes near the target semantic vector":
   an item whose code is closer (dot product) to another training class's semantic vector than to its own is
   pulled towards its own: ``L_c = mean_i 1[argmax_j b_i^T s^j != l_i] ||b_i - s^{l_i}||^2 / bits``.
7. **Reconstruction module**: a decoder ``b -> mlp(decoder_hidden) -> x^`` and the mean squared error to the
   (standardised) input features.
8. **Total loss**: ``L = L_t + L_s + mu_rec L_rec + mu_cls L_cls`` (weights not in the slides; default 1, 1),
   Adam, gradients flowing into both branches (one joint optimisation; the slides show one network).
9. **VSB2-Net vs VSB2-G** (two "reconstructive spaces"): the abstract's "reconstructive semantic relationships
   are established in the hamming space, preserving *local* similarity relationships and explicitly enlarging
   the discrepancy between semantic hamming vectors". VSB2-G is read as the *global* reconstruction:
   ``grouping="global"``, all L training classes in one group (S1 over all pairs; S2 empty, since there is only
   one group). The other possible reading, the reconstruction module reconstructing the class word vector
   (semantic space) instead of the visual feature, is available as ``recon_target="semantic"``
   (registered ``vsb2g_sem``).
10. **Mini-VSB2-Net vs Mini-SitNet** (two "mapping modes"): "Mini" = without the task-driven regularisation
    (``mu_rec = mu_cls = 0``), so only the mapping differs. Mini-VSB2-Net maps the semantic space into the Hamming
    space (``L_t + L_s``). Mini-SitNet (``mapping="semantic"``, SitNet's mode: Guo et al., ICME 2017) maps codes
    into the word-vector space with a linear layer ``e = P b`` and ranks there,
    ``max(0, m_w - cos(e_i, w^{l_i}) + max_j cos(e_i, w^{l_j}))`` (:func:`transfer_ranking_loss` on the
    normalised vectors) plus the same |b| -> 1 quantisation on the codes. Its text code (TBIR) is
    ``sign(P^T w^)``, the binary code that maximises ``(P b)^T w^``.
11. **Training classes** = the DataModule's seen classes minus its validation classes (``val_classes`` /
    ``n_val_classes``); a batch holding any other class is a ``ValueError``. Every class (seen or unseen) must
    have a finite, non-zero word vector (unseen ones are the TBIR queries): otherwise a ``ValueError`` names them.
    Every training item must carry exactly one class (T1 and the classification pull rank against the item's
    class): multi-label data, e.g. a ``zero_shot_multilabel`` split, is refused in ``setup()`` with a
    ``ValueError`` pointing to AgNet, whose class semantics average the vectors of an item's labels.
12. **No-semantics baseline** (``vsb2net_nosem``): the same image branch, decoder and losses, but the class
    vectors ``s^l`` are free parameters (``tanh`` of a learned ``[L, bits]`` table) instead of the semantic branch's
    image of the word vectors: a supervised hashing network on the seen classes that never reads a word vector.
    It serves image->image (IBIR) only.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from lightning_hash.class_semantics import (class_matrix, require_single_label, require_single_label_split,
                                            require_training_classes, require_training_split_classes)
from lightning_hash.methods._registry import register
from lightning_hash.module import HashingModule
from lightning_hash.nn import mlp

_REDUCTIONS = ("sum", "mean")


#: what the refusal of multi-label data suggests (the ranking loss T1 and the classification pull need one class per
#: item; AgNet's class semantics average the vectors of an item's labels)
SINGLE_LABEL_INSTEAD = ("for multi-label data (e.g. protocol 'zero_shot_multilabel') use agnet or agnet_noattr, which "
                        "average the class vectors of an item's labels; this method needs single-label data (e.g. "
                        "protocol 'zero_shot')")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


# ============================================================================================== pure functions
def cosine_similarity_matrix(X: torch.Tensor, Y: Optional[torch.Tensor] = None, eps: float = 1e-12) -> torch.Tensor:
    """Cosine similarities ``[n, m]`` between the rows of ``X [n, d]`` and ``Y [m, d]`` (``Y = X`` if None).

    >>> cosine_similarity_matrix(torch.tensor([[1.0, 0.0], [1.0, 1.0]])).round(decimals=4)
    tensor([[1.0000, 0.7071],
            [0.7071, 1.0000]])
    """
    Y = X if Y is None else Y
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"cosine_similarity_matrix: X {tuple(X.shape)} and Y {tuple(Y.shape)} must be [n, d], [m, d]")
    return F.normalize(X, dim=1, eps=eps) @ F.normalize(Y, dim=1, eps=eps).t()


def knn_groups(W: torch.Tensor, T: int, class_names: Optional[Sequence[str]] = None) -> torch.Tensor:
    """Split the L class word vectors ``W [L, d]`` into ``T`` groups by K nearest neighbours (cosine).

    Deterministic and balanced (module docstring, decision 3): sizes ``L // T`` with the first ``L % T`` groups one
    larger; seeds by farthest-point traversal (the first: the class with the lowest mean similarity to the others;
    each next: the class whose highest similarity to the chosen seeds is lowest); group ``t`` = seed ``t`` plus
    its ``size_t - 1`` most similar unassigned non-seed classes. Ties go to the lower index.

    Returns the group index of each class, long ``[L]``. ``T > L`` (fewer classes than groups) or ``T < 1`` raises
    ``ValueError``.

    >>> W = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    >>> knn_groups(W, 2).tolist()     # seeds: class 2 (least similar on average), then class 0
    [1, 1, 0, 0]
    """
    if W.ndim != 2:
        raise ValueError(f"knn_groups: W must be [L, d], got shape {tuple(W.shape)}")
    L = int(W.shape[0])
    if isinstance(T, bool) or int(T) != T or int(T) < 1:
        raise ValueError(f"knn_groups: the number of groups T must be a positive integer, got {T!r}")
    T = int(T)
    if T > L:
        names = f" {list(class_names)}" if class_names is not None else ""
        raise ValueError(f"knn_groups: fewer training classes ({L}{names}) than groups T={T}; lower num_groups to at "
                         f"most {L}")
    sim = cosine_similarity_matrix(W.double())
    sizes = [L // T + (1 if t < L % T else 0) for t in range(T)]
    # seeds: farthest-point traversal
    if L > 1:
        mean_sim = (sim.sum(dim=1) - sim.diagonal()) / (L - 1)
    else:
        mean_sim = torch.zeros(1, dtype=sim.dtype)
    seeds = [int(torch.argmin(mean_sim))]        # argmin returns the first minimum: lower index on ties
    while len(seeds) < T:
        closeness = sim[:, seeds].max(dim=1).values
        closeness[seeds] = float("inf")
        seeds.append(int(torch.argmin(closeness)))
    groups = torch.full((L,), -1, dtype=torch.long)
    for t, seed in enumerate(seeds):
        groups[seed] = t
    for t, seed in enumerate(seeds):
        free = [j for j in range(L) if groups[j] < 0]
        # most similar first, lower index on ties (stable sort of -similarity over increasing indices)
        order = sorted(free, key=lambda j: (-float(sim[seed, j]), j))
        for j in order[:sizes[t] - 1]:
            groups[j] = t
    if (groups < 0).any():  # pragma: no cover - sizes sum to L by construction
        raise RuntimeError("knn_groups: a class was left without a group")
    return groups


def within_group_similarity_loss(sim_w: torch.Tensor, sim_s: torch.Tensor, groups: torch.Tensor,
                                 reduction: str = "sum") -> torch.Tensor:
    """S1: ``sum_t sum_{i, j in N_t} (Sim(w_i, w_j) - Sim(s_i, s_j))^2`` over ordered pairs, ``i = j`` included.

    ``sim_w``, ``sim_s``: ``[L, L]`` similarity matrices; ``groups``: group index per class ``[L]``.
    ``reduction="mean"`` divides by the number of such pairs (``sum_t |N_t|^2``).
    """
    _check_reduction(reduction)
    if sim_w.shape != sim_s.shape or sim_w.shape[0] != groups.shape[0]:
        raise ValueError(f"within_group_similarity_loss: sim_w {tuple(sim_w.shape)}, sim_s {tuple(sim_s.shape)} and "
                         f"groups {tuple(groups.shape)} do not match")
    same = (groups[:, None] == groups[None, :]).to(sim_s.dtype)
    total = (same * (sim_w.to(sim_s.dtype) - sim_s) ** 2).sum()
    return total / same.sum() if reduction == "mean" else total


def group_barycentres(S: torch.Tensor, groups: torch.Tensor, num_groups: Optional[int] = None) -> torch.Tensor:
    """``BC(N_t)``: the mean of the group's semantic vectors, ``[T, bits]`` (``S [L, bits]``, ``groups [L]``)."""
    T = int(groups.max()) + 1 if num_groups is None else int(num_groups)
    onehot = F.one_hot(groups, T).to(S.dtype)                  # [L, T]
    counts = onehot.sum(dim=0)
    if (counts == 0).any():
        raise ValueError(f"group_barycentres: groups {torch.nonzero(counts == 0).flatten().tolist()} are empty")
    return (onehot.t() @ S) / counts[:, None]


def barycentre_margin_loss(S: torch.Tensor, groups: torch.Tensor, lam: float, reduction: str = "sum"
                           ) -> torch.Tensor:
    """S2: ``sum_{t1 != t2} max(0, lambda - ||BC(N_t1) - BC(N_t2)||^2)`` over ordered group pairs.

    ``reduction="mean"`` divides by ``T (T - 1)``; one group gives 0 (no pair).
    """
    _check_reduction(reduction)
    bc = group_barycentres(S, groups)
    T = bc.shape[0]
    if T < 2:
        return S.sum() * 0.0
    d2 = ((bc[:, None, :] - bc[None, :, :]) ** 2).sum(dim=2)       # [T, T]
    off = ~torch.eye(T, dtype=torch.bool, device=S.device)
    hinge = F.relu(lam - d2[off])
    return hinge.mean() if reduction == "mean" else hinge.sum()


def quantization_l1_loss(S: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """S3: ``sum_i || |s_i| - e ||_1`` (``e`` all ones): pushes every entry to +-1.

    ``reduction="mean"`` averages over the rows (classes), so the result is ``bits`` times the mean entry.
    """
    _check_reduction(reduction)
    per_row = (S.abs() - 1.0).abs().sum(dim=1)
    return per_row.mean() if reduction == "mean" else per_row.sum()


def semantic_loss(W: torch.Tensor, S: torch.Tensor, groups: torch.Tensor, alpha: float = 1.0, beta: float = 1.0,
                  gamma: float = 1.0, lam: float = 1.0, reduction: str = "sum", scale: float = 1.0
                  ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """``L_s = alpha S1 + beta S2 / scale + gamma S3 / scale`` on word vectors ``W [L, d]`` and semantic vectors
    ``S [L, bits]``; returns ``(loss, {"sim": S1, "bary": S2 / scale, "quant": S3 / scale})``.

    ``scale`` (the module passes ``bits``) divides the two terms that grow with the code length; 1 gives the
    slides' sum as printed (with ``reduction="sum"``).
    """
    sim_w = cosine_similarity_matrix(W)
    sim_s = cosine_similarity_matrix(S)
    terms = {"sim": within_group_similarity_loss(sim_w, sim_s, groups, reduction),
             "bary": barycentre_margin_loss(S, groups, lam, reduction) / scale,
             "quant": quantization_l1_loss(S, reduction) / scale}
    return alpha * terms["sim"] + beta * terms["bary"] + gamma * terms["quant"], terms


def transfer_ranking_loss(B: torch.Tensor, S: torch.Tensor, targets: torch.Tensor, margin: float,
                          reduction: str = "sum") -> torch.Tensor:
    """T1: ``sum_i max(0, m - b_i^T s^{l_i} + max_{j != l_i} b_i^T s^j)``.

    ``B [N, bits]`` codes, ``S [L, bits]`` class vectors, ``targets [N]`` the row of S of each item's class.
    Needs at least two classes. ``reduction="mean"`` averages over the items.
    """
    _check_reduction(reduction)
    if S.shape[0] < 2:
        raise ValueError(f"transfer_ranking_loss: needs at least two classes to rank against, got {S.shape[0]}")
    scores = B @ S.t()                                          # [N, L]
    pos = scores.gather(1, targets[:, None]).squeeze(1)
    others = scores.masked_fill(F.one_hot(targets, S.shape[0]).bool(), float("-inf"))
    hinge = F.relu(margin - pos + others.max(dim=1).values)
    return hinge.mean() if reduction == "mean" else hinge.sum()


def classification_pull_loss(B: torch.Tensor, S: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
                             ) -> torch.Tensor:
    """Classification module: ``sum_i 1[argmax_j b_i^T s^j != l_i] ||b_i - s^{l_i}||^2``.

    Items whose code is nearest (dot product) to another class's semantic vector are pulled towards their own.
    The indicator is a constant (no gradient). ``reduction="mean"`` averages over all N items.
    """
    _check_reduction(reduction)
    with torch.no_grad():
        wrong = ((B @ S.t()).argmax(dim=1) != targets).to(B.dtype)
    per_item = wrong * ((B - S[targets]) ** 2).sum(dim=1)
    return per_item.mean() if reduction == "mean" else per_item.sum()


def reconstruction_loss(X_hat: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Reconstruction module: mean squared error between reconstructed and input features (mean over entries)."""
    if X_hat.shape != X.shape:
        raise ValueError(f"reconstruction_loss: X_hat {tuple(X_hat.shape)} and X {tuple(X.shape)} differ")
    return F.mse_loss(X_hat, X)


# ============================================================================================== the method
GROUPINGS = ("knn", "global")
MAPPINGS = ("hamming", "semantic", "free")
RECON_TARGETS = ("visual", "semantic")


@register("vsb2net")
class VSB2Net(HashingModule):
    """VSB2-Net and its variants (module docstring: equations, decisions, variants).

    Parameters
    ----------
    bits: code length.
    image_dim: image feature size (filled by run.py). num_classes: all classes (filled by run.py; checked).
    word_dim: size of the class word vectors; inferred from ``class_semantics[text_key]`` in ``setup()`` if None.
    num_train_classes: number of training classes (needed by ``mapping="free"``); written in ``setup()``.
    text_key: the class-semantics entry holding the word vectors (the TBIR queries' modality).
    num_groups: T, the number of KNN groups (``grouping="knn"``).
    grouping: ``"knn"`` (VSB2-Net) or ``"global"`` (VSB2-G: one group).
    mapping: ``"hamming"`` (VSB2-Net: word vectors -> Hamming space), ``"semantic"`` (SitNet: codes -> word-vector
        space), ``"free"`` (no semantics: learned class vectors).
    alpha, beta, gamma: L_s weights (S1, S2, S3). lambda_ratio: S2's lambda as a fraction of ``bits``.
    margin: T1's margin m as a fraction of ``bits``. semantic_margin: the margin of the ``"semantic"`` mapping
        (cosine scale).
    mu_rec, mu_cls: weights of the reconstruction and classification modules (0 switches a module off).
    recon_target: ``"visual"`` (reconstruct the image features) or ``"semantic"`` (the class word vector).
    eta: weight of an optional ``|b| -> 1`` quantisation on the image codes (0 = as the slides).
    image_hidden, semantic_hidden, decoder_hidden: hidden widths of the MLPs.
    lr, weight_decay: Adam.
    image_key: the image modality. eval_kwargs: see :class:`~lightning_hash.module.HashingModule`.
    """

    def __init__(self, bits: int = 64, image_dim: Optional[int] = None, num_classes: Optional[int] = None,
                 word_dim: Optional[int] = None, num_train_classes: Optional[int] = None,
                 text_key: str = "word_vectors", num_groups: int = 2, grouping: str = "knn", mapping: str = "hamming",
                 alpha: float = 0.1, beta: float = 0.1, gamma: float = 0.1, lambda_ratio: float = 1.0,
                 margin: float = 0.0625, semantic_margin: float = 0.3, mu_rec: float = 1.0, mu_cls: float = 1.0,
                 recon_target: str = "visual", eta: float = 0.0, image_hidden: Sequence[int] = (1024,),
                 semantic_hidden: Sequence[int] = (), decoder_hidden: Sequence[int] = (1024,),
                 lr: float = 1e-3, weight_decay: float = 0.0, image_key: str = "image", **eval_kwargs) -> None:
        super().__init__(bits=bits, **eval_kwargs)
        self.save_hyperparameters()
        name = getattr(self, "method_name", type(self).__name__)
        if image_dim is None or int(image_dim) <= 0:
            raise ValueError(f"{name}: image_dim must be a positive integer (run.py fills it from the datamodule)")
        for arg, value, valid in (("grouping", grouping, GROUPINGS), ("mapping", mapping, MAPPINGS),
                                  ("recon_target", recon_target, RECON_TARGETS)):
            if value not in valid:
                raise ValueError(f"{name}: {arg} must be one of {valid}, got {value!r}")
        if int(num_groups) < 1:
            raise ValueError(f"{name}: num_groups (T) must be a positive integer, got {num_groups}")
        for arg in ("alpha", "beta", "gamma", "lambda_ratio", "margin", "semantic_margin", "mu_rec", "mu_cls", "eta"):
            if float(self.hparams[arg]) < 0:
                raise ValueError(f"{name}: {arg} must be >= 0, got {self.hparams[arg]}")
        if mapping == "free" and recon_target == "semantic" and float(mu_rec) > 0:
            raise ValueError(f"{name}: mapping='free' reads no word vectors, so recon_target='semantic' is impossible")
        self.image_key, self.text_key = image_key, text_key
        self.image_net = nn.Sequential(mlp(int(image_dim), list(image_hidden), self.bits), nn.Tanh())
        self.semantic_net: Optional[nn.Module] = None        # hamming: w -> s
        self.projection: Optional[nn.Module] = None          # semantic: b -> e = P b
        self.class_table: Optional[nn.Parameter] = None      # free: learned class vectors
        self.decoder: Optional[nn.Module] = None
        self._W: Optional[torch.Tensor] = None               # [C, d] word vectors of every class
        self._train_classes: Optional[torch.Tensor] = None   # [L] class indices
        self._class_row: Optional[torch.Tensor] = None       # [C] -> row in [0, L) or -1
        self._groups: Optional[torch.Tensor] = None          # [L] group index
        if mapping == "free":
            if num_train_classes is not None:
                self._build(None, int(num_train_classes))
        elif word_dim is not None:
            self._build(int(word_dim), None)

    # ------------------------------------------------------------------ construction
    @property
    def uses_word_vectors(self) -> bool:
        return self.hparams.mapping != "free"

    def _build(self, word_dim: Optional[int], num_train_classes: Optional[int]) -> None:
        hp = self.hparams
        if hp.mapping == "hamming":
            self.semantic_net = nn.Sequential(mlp(word_dim, list(hp.semantic_hidden), self.bits), nn.Tanh())
        elif hp.mapping == "semantic":
            self.projection = nn.Linear(self.bits, word_dim, bias=False)
        else:
            self.class_table = nn.Parameter(0.1 * torch.randn(num_train_classes, self.bits))
        if float(hp.mu_rec) > 0:
            out = int(hp.image_dim) if hp.recon_target == "visual" else word_dim
            self.decoder = mlp(self.bits, list(hp.decoder_hidden), out)

    def setup(self, stage: str) -> None:
        """Read the word vectors and the training classes from the DataModule; group the training classes."""
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None or not hasattr(dm, "class_semantics"):
            if self.image_net is None or (self.semantic_net is None and self.projection is None
                                          and self.class_table is None):
                raise RuntimeError(f"{self.method_name}: needs a RetrievalDataModule (class semantics "
                                   f"'{self.text_key}', the zero-shot split) to set itself up")
            return
        if stage == "fit":     # _targets needs one class per training item: refuse multi-label data up front
            require_single_label_split(dm, self.method_name, SINGLE_LABEL_INSTEAD)
        hp = self.hparams
        names = list(getattr(dm, "class_names", []) or [])
        C = len(names) if names else None
        train_classes = self._training_classes(dm)
        if hp.num_classes is not None and C is not None and int(hp.num_classes) != C:
            raise ValueError(f"{self.method_name}: num_classes={hp.num_classes} but the datamodule has {C} classes")
        if self.uses_word_vectors:
            W = self._word_vectors(dm)
            word_dim = int(W.shape[1])
            if self.semantic_net is None and self.projection is None:
                self._build(word_dim, None)
                hp.word_dim = word_dim                                    # saved in checkpoints
            elif int(hp.word_dim) != word_dim:
                raise ValueError(f"{self.method_name}: built for word_dim={hp.word_dim} but the datamodule's "
                                 f"'{self.text_key}' vectors have {word_dim} dimensions")
            self._W = W
            C = W.shape[0]
        elif C is None:
            raise ValueError(f"{self.method_name}: the datamodule has no class names")
        L = int(train_classes.numel())
        if L < 2:
            raise ValueError(f"{self.method_name}: the ranking loss needs at least two training classes, got "
                             f"{[names[c] for c in train_classes.tolist()] if names else L}")
        if not self.uses_word_vectors:
            if self.class_table is None:
                self._build(None, L)
                hp.num_train_classes = L
            elif int(hp.num_train_classes) != L:
                raise ValueError(f"{self.method_name}: built for {hp.num_train_classes} training classes, the "
                                 f"datamodule has {L}")
        self._train_classes = train_classes
        row = torch.full((C,), -1, dtype=torch.long)
        row[train_classes] = torch.arange(L)
        self._class_row = row
        if self._W is not None and hp.mapping == "hamming":
            T = 1 if hp.grouping == "global" else int(hp.num_groups)
            train_names = [names[c] for c in train_classes.tolist()] if names else None
            self._groups = knn_groups(self._W[train_classes], T, train_names)
        if stage == "fit":
            self._check_training_items(dm)

    def _training_classes(self, dm) -> torch.Tensor:
        """Seen classes minus the validation classes (all classes when the split is not zero-shot)."""
        split = getattr(dm, "split", None)
        n = int(dm.num_classes)
        if split is None or not getattr(split, "zero_shot", False):
            return torch.arange(n)
        seen = torch.as_tensor(split.seen_classes, dtype=torch.long)
        val = torch.as_tensor(split.extra.get("val_classes", []), dtype=torch.long)
        keep = ~torch.isin(seen, val)
        return seen[keep].sort().values

    def _check_training_items(self, dm) -> None:
        require_training_split_classes(dm, self._class_row >= 0, self.method_name,
                                       what="unseen or held out for validation")

    def _word_vectors(self, dm) -> torch.Tensor:
        return class_matrix(dm, self.text_key, "word vector", self.method_name, "text_key")

    def _require_setup(self) -> None:
        if self._train_classes is None:
            raise RuntimeError(f"{self.method_name}: not set up; train through a Trainer with the DataModule "
                               "(setup() reads the class semantics and the split)")

    # ------------------------------------------------------------------ encoding
    def class_vectors(self, W: torch.Tensor) -> torch.Tensor:
        """Semantic Hamming vectors ``s = tanh(f(w))`` of word vectors ``W [n, d]`` (``mapping="hamming"``)."""
        return self.semantic_net(W)

    def encodable_modalities(self):
        return [self.image_key] + ([self.text_key] if self.uses_word_vectors else [])

    def encode(self, batch, modality):
        if modality == self.image_key:
            return self.image_net(batch[modality])
        if modality == self.text_key and self.hparams.mapping == "hamming":
            return self.class_vectors(batch[modality])
        if modality == self.text_key and self.hparams.mapping == "semantic":
            return F.normalize(batch[modality], dim=1) @ self.projection.weight     # P^T w^ -> sign maximises e^T w^
        raise ValueError(f"{self.method_name} (mapping={self.hparams.mapping!r}) encodes '{self.image_key}'"
                         + (f" and '{self.text_key}'" if self.uses_word_vectors else "")
                         + f", not '{modality}'")

    # ------------------------------------------------------------------ training
    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Row (in the training-class list) of each item's class; items of other classes are a ValueError."""
        self._require_setup()
        lab = labels.float()
        if lab.ndim == 1:
            cls = lab.long()
        else:
            require_single_label(lab, self.method_name, SINGLE_LABEL_INSTEAD)
            cls = lab.argmax(dim=1)
        require_training_classes(cls, self._class_row >= 0, self.method_name, what="unseen or held out for validation")
        return self._class_row.to(cls.device)[cls]

    def training_step(self, batch, batch_idx):
        hp = self.hparams
        x = batch[self.image_key]
        targets = self._targets(batch["label"])
        n = x.shape[0]
        b = self.image_net(x)
        terms: Dict[str, torch.Tensor] = {}
        if hp.mapping == "semantic":
            Wn = F.normalize(self._W[self._train_classes].to(x.device), dim=1)
            e = F.normalize(self.projection(b), dim=1)
            terms["t"] = transfer_ranking_loss(e, Wn, targets, float(hp.semantic_margin), "mean")
            S = None
            loss = terms["t"]
        else:
            if hp.mapping == "hamming":
                Wt = self._W[self._train_classes].to(x.device)
                S = self.class_vectors(Wt)
                ls, sterms = semantic_loss(Wt, S, self._groups.to(x.device), alpha=hp.alpha, beta=hp.beta,
                                           gamma=hp.gamma, lam=float(hp.lambda_ratio) * self.bits,
                                           reduction="mean", scale=float(self.bits))
                terms.update({f"s_{k}": v for k, v in sterms.items()})
                terms["s"] = ls
            else:
                S = torch.tanh(self.class_table)
                terms["s_quant"] = quantization_l1_loss(S, "mean") / self.bits
                terms["s"] = hp.gamma * terms["s_quant"]
            terms["t"] = transfer_ranking_loss(b, S, targets, float(hp.margin) * self.bits, "mean") / self.bits
            loss = terms["t"] + terms["s"]
            if float(hp.mu_cls) > 0:
                terms["cls"] = classification_pull_loss(b, S, targets, "mean") / self.bits
                loss = loss + hp.mu_cls * terms["cls"]
        if float(hp.mu_rec) > 0:
            target = x if hp.recon_target == "visual" else self._W[self._train_classes].to(x.device)[targets]
            terms["rec"] = reconstruction_loss(self.decoder(b), target)
            loss = loss + hp.mu_rec * terms["rec"]
        if float(hp.eta) > 0 or hp.mapping == "semantic":
            terms["b_quant"] = quantization_l1_loss(b, "mean") / self.bits
            weight = float(hp.eta) if float(hp.eta) > 0 else float(hp.gamma)
            loss = loss + weight * terms["b_quant"]
        if self._log_details_now():
            self.log("train/loss", loss.detach(), batch_size=n, prog_bar=True)
            self.log_dict({f"train/loss_{k}": v.detach() for k, v in terms.items()}, batch_size=n)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=float(self.hparams.lr),
                                weight_decay=float(self.hparams.weight_decay))


def _variant(name: str, doc: str, **defaults):
    """Register a subclass of :class:`VSB2Net` whose constructor defaults are ``defaults`` (a slides' variant)."""
    def __init__(self, bits: int = 64, **kwargs):
        for key, value in defaults.items():
            kwargs.setdefault(key, value)
        VSB2Net.__init__(self, bits=bits, **kwargs)
    import inspect
    sig = inspect.signature(VSB2Net.__init__)
    __init__.__signature__ = sig.replace(parameters=[
        p.replace(default=defaults[p.name]) if p.name in defaults else p for p in sig.parameters.values()])
    cls = type(name, (VSB2Net,), {"__init__": __init__, "__doc__": doc, "variant_defaults": dict(defaults),
                                  "__module__": __name__})
    return cls


VSB2G = register("vsb2g")(_variant(
    "VSB2G", "VSB2-G: the global reconstruction of the semantic relationships (one group, decision 9).",
    grouping="global"))
VSB2GSem = register("vsb2g_sem")(_variant(
    "VSB2GSem", "VSB2-G, other reading: the reconstruction module reconstructs the class word vector (decision 9).",
    recon_target="semantic"))
MiniVSB2Net = register("mini_vsb2net")(_variant(
    "MiniVSB2Net", "Mini-VSB2-Net: VSB2-Net's mapping (L_t + L_s) without the task-driven regularisation.",
    mu_rec=0.0, mu_cls=0.0))
MiniSitNet = register("mini_sitnet")(_variant(
    "MiniSitNet", "Mini-SitNet: SitNet's mapping mode (codes -> word-vector space), no regularisation (decision 10).",
    mapping="semantic", mu_rec=0.0, mu_cls=0.0))
VSB2NetNoSem = register("vsb2net_nosem")(_variant(
    "VSB2NetNoSem", "No-semantics supervised baseline: learned class vectors instead of word vectors (decision 12).",
    mapping="free"))

"""AgNet: Attribute-Guided Network for cross-modal zero-shot hashing (TBIR and IBIR).

Paper: Z. Ji, Y. Sun, Y. Yu, Y. Pang, J. Han, "Attribute-Guided Network for Cross-Modal Zero-Shot Hashing",
IEEE TNNLS 2020 (``shared/papers/agnet_paper.md``). No public code.

Networks (Table II)
-------------------
* V2A: image features x -> FC1024-ReLU -> FC512-ReLU -> FC d-Sigmoid (predicted attributes a^(v));
* T2A: class-name text vector z -> FC1000-ReLU -> FC d-Sigmoid (predicted attributes a^(t));
* A2H (shared by both modalities): a^ -> FC128-ReLU -> FC128-Sigmoid -> FC bits (no activation).

Codes: image ``sign(A2H(V2A(x)))``, text ``sign(A2H(T2A(z)))``.

Equations implemented (each a pure function below, tested against the equation in ``tests/lightning_hash/methods/test_agnet.py``)
--------------------------------------------------------------------------------------------------------
* Eq. (1) :func:`attribute_bce`: ``L_att = -1/N sum_i [a_i^T log a^_i + (1 - a_i)^T log(1 - a^_i)]``.
* Eq. (2) :func:`category_similarity_loss`: ``Theta_ij = 1/2 P_i^T Q_j``,
  ``L_cs = -sum_ij (S^c_ij Theta_ij - log(1 + e^Theta_ij))`` (``S^c_ij = 1`` iff same class).
* Eq. (3) :func:`attribute_similarity_loss`: ``S^att_ij = cos(a_i, a_j) - S^c_ij``, ``phi_ij = 1/2 P_i^T P_j``,
  ``L_as = sum_ij sigmoid(phi_ij S^att_ij)``.
* Eq. (4) :func:`regularization_loss`: ``L_reg = ||B - P||_F^2 + ||P^T 1||_F^2``, ``B = sign(P)`` (constant).
* Eq. (5) :func:`a2h_loss`: ``L = L_cs + lambda L_as + eta L_reg`` (lambda = eta = 1).
* Eq. (7) :func:`positive_error_distance` (PED): ``sum_ij A_ji |A_ji - A^_ji| / sum_ij A_ji``, logged per
  modality on training batches (``train/PED/<modality>``) and on the evaluation sets (``val|test/PED/<modality>``;
  at test time on the unseen classes).

Training: two stages in one LightningModule
-------------------------------------------
Epochs ``[0, stage1_epochs)`` are stage 1 (V2A and T2A with eq. 1, each instance's target the attribute vector
of its class, its text input the word vector of its class); later epochs are stage 2 (A2H with eq. 5 on the
predicted attributes, V2A/T2A frozen). The stage is read from ``trainer.current_epoch``, so a run resumed in
stage 2 continues stage 2 (and a run resumed in stage 1 finishes stage 1 first). During stage 1 the codes are
meaningless, so validation logs ``val/<select_metric>/mean = -1`` (checkpoint selection never picks a stage-1
checkpoint) and only the PEDs. SGD, batch 32 (DataModule), LR 1e-3 multiplied by ``(1 - 1e-4)`` after every
iteration (a per-step ``LambdaLR``).

Class semantics (the attribute matrix ``A [C, d]`` and the class text vectors ``W [C, k]``) are read from
``trainer.datamodule.class_semantics[attribute_key / text_key]`` in ``setup()``; they are class-level, so
the networks' input/output sizes are inferred from them when not given and written back into the
hyperparameters (a checkpoint alone rebuilds the model).

Departures from the paper, and why
----------------------------------
* Eq. (4) as printed, ``||P^T 1||^2`` with ``P`` of shape ``c x n``, sums each *code's* entries (its gradient in
  eq. (6), ``2 eta P_i^T 1``, confirms the reading), although the text says "each bit is balanced" (DCMH's
  ``||F 1||^2``, a sum over the batch per bit). ``balance="code"`` follows the printed equation; the default
  ``balance="bit"`` the text: with the printed term, one balanced code for every item is a zero of ``L_reg``
  and training collapsed to it on the digits default (measured: every item the same code).
* ``loss_reduction="pairs"`` (default) divides eq. (5) by ``n^2`` (the batch's pairs): the relative weights of
  the terms are the paper's; only the step size changes. With the printed sums, SGD at LR 1e-3 diverged (NaN).
* Optimiser: ``optimizer="sgd"`` (the paper's; ``momentum`` default 0.9, not given in the paper) or ``"adam"``.
  On every setting tried with SGD (momentum 0 / 0.9, LR 1e-4 .. 0.5, sums or pair means) stage 2 saturated
  A2H's Sigmoid layer and mapped every item to one code; Adam at the paper's LR 1e-3 and decay trains, so the
  shipped configs use it.
* The paper does not say whether the 0.01% per-iteration LR decay restarts in stage 2; here it runs over the
  global iteration count of the whole fit.
* Non-binary attribute matrices (xlsa17's L2-normalised ``att``) are min-max scaled per attribute to ``[0, 1]``
  and used as soft BCE targets (``attribute_targets="auto"``); ``"threshold"`` binarises at each attribute's
  mean over classes instead.
* Text input: the paper's 1000-d Wikipedia word2vec of the class name; here whatever class-level text vectors
  the DataModule holds (``text_key``): 64-d character n-gram vectors on digits, 300-d word2vec on CIFAR-10,
  the class-mean doc2vec on CUB-10 (see ``datamodules/zero_shot_semantics.py``).

The no-attribute baseline (``agnet_noattr``, :class:`AgNetNoAttr`): V2A's and T2A's hidden layers followed by a
linear code layer, trained end to end on the seen classes with ``L_cs + eta L_reg`` only (no attribute targets,
no ``L_as``, one stage): AgNet's networks and code loss without the attribute space.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from lightning_hash.class_semantics import (class_matrix, require_training_classes, require_training_split_classes,
                                            seen_class_mask)
from lightning_hash.codes import sign_codes
from lightning_hash.methods._registry import register
from lightning_hash.similarity import label_similarity
from lightning_hash.module import HashingModule


# ============================================================================================== loss terms
def attribute_bce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (1): ``-1/N sum_i [a_i^T log a^_i + (1 - a_i)^T log(1 - a^_i)]`` (sum over attributes, mean over N).

    ``pred`` are probabilities in ``(0, 1)`` (the Sigmoid outputs of V2A / T2A); logs are clamped at -100 as in
    :func:`torch.nn.functional.binary_cross_entropy`.
    """
    if pred.shape != target.shape:
        raise ValueError(f"attribute_bce: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return F.binary_cross_entropy(pred, target, reduction="sum") / pred.shape[0]


#: ``S^c_ij = 1`` iff items i and j share a class (eq. 2's category similarity; the library's one definition)
category_similarity = label_similarity


def category_similarity_loss(P: torch.Tensor, Q: torch.Tensor, S_c: torch.Tensor) -> torch.Tensor:
    """Eq. (2): ``-sum_ij (S^c_ij Theta_ij - log(1 + e^Theta_ij))`` with ``Theta = 1/2 P Q^T``.

    ``P`` (image outputs) and ``Q`` (text outputs) are ``[n, c]`` (rows = items; the paper's columns).
    ``log(1 + e^x)`` is computed as ``softplus`` (exact, no overflow).
    """
    theta = 0.5 * P @ Q.t()
    return -(S_c * theta - F.softplus(theta)).sum()


def attribute_similarity(attributes: torch.Tensor, S_c: torch.Tensor) -> torch.Tensor:
    """``S^att_ij = cos(a_i, a_j) - S^c_ij`` (eq. 3's modified cosine similarity); ``attributes`` ``[n, d]``."""
    a = F.normalize(attributes.float(), dim=1)
    return a @ a.t() - S_c


def attribute_similarity_loss(P: torch.Tensor, S_att: torch.Tensor) -> torch.Tensor:
    """Eq. (3): ``sum_ij sigmoid(phi_ij S^att_ij)`` with ``phi = 1/2 P P^T``."""
    phi = 0.5 * P @ P.t()
    return torch.sigmoid(phi * S_att).sum()


def regularization_loss(P: torch.Tensor, balance: str = "code") -> torch.Tensor:
    """Eq. (4): ``||B - P||_F^2 + ||P^T 1||_F^2`` with ``B = sign(P)`` held constant.

    ``P`` is ``[n, c]``. ``balance="code"``: the printed ``P^T 1`` (paper's ``P`` is ``c x n``), the squared sum
    of each code's entries; ``balance="bit"``: DCMH's ``||F 1||^2``, the squared sum of each bit over the batch.
    """
    B = sign_codes(P.detach())
    quant = ((B - P) ** 2).sum()
    if balance == "code":
        bal = (P.sum(dim=1) ** 2).sum()
    elif balance == "bit":
        bal = (P.sum(dim=0) ** 2).sum()
    else:
        raise ValueError(f"balance must be 'code' or 'bit', got {balance!r}")
    return quant + bal


def a2h_loss(P: torch.Tensor, Q: torch.Tensor, S_c: torch.Tensor, S_att: Optional[torch.Tensor],
             lam: float = 1.0, eta: float = 1.0, balance: str = "code"
             ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Eq. (5): ``L_cs + lambda L_as + eta L_reg``; returns ``(loss, {"cs", "as", "reg"})``.

    ``S_att=None`` (or ``lam=0``) drops ``L_as`` (the no-attribute baseline).
    """
    terms = {"cs": category_similarity_loss(P, Q, S_c), "reg": regularization_loss(P, balance)}
    loss = terms["cs"] + eta * terms["reg"]
    if S_att is not None and lam != 0:
        terms["as"] = attribute_similarity_loss(P, S_att)
        loss = loss + lam * terms["as"]
    return loss, terms


def positive_error_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (7): ``sum A |A - A^| / sum A``, the prediction error on the attributes that are on."""
    denom = target.sum()
    if denom <= 0:
        return torch.tensor(float("nan"), device=pred.device)
    return (target * (target - pred).abs()).sum() / denom


def ped_sums(pred: torch.Tensor, target: torch.Tensor) -> Tuple[float, float]:
    """Numerator and denominator of eq. (7), for accumulating PED over several batches."""
    return float((target * (target - pred).abs()).sum()), float(target.sum())


def attribute_targets(matrix: torch.Tensor, mode: str = "auto") -> torch.Tensor:
    """Class attribute matrix ``[C, d]`` -> BCE targets in ``[0, 1]`` (see the module docstring).

    ``"auto"``: a matrix already in ``[0, 1]`` is kept, any other is min-max scaled per attribute (column);
    ``"threshold"``: 1 where an attribute exceeds its mean over classes; ``"binary"``: must be 0/1 already.
    """
    m = matrix.float()
    if mode == "binary":
        if not torch.all((m == 0) | (m == 1)):
            raise ValueError("attribute_targets='binary' but the attribute matrix holds values other than 0 and 1")
        return m
    if mode == "threshold":
        return (m > m.mean(dim=0, keepdim=True)).float()
    if mode != "auto":
        raise ValueError(f"attribute_targets must be 'auto', 'threshold' or 'binary', got {mode!r}")
    if m.min() >= 0 and m.max() <= 1:
        return m
    lo, hi = m.min(dim=0, keepdim=True).values, m.max(dim=0, keepdim=True).values
    return (m - lo) / (hi - lo).clamp_min(1e-12)


# ============================================================================================== networks
def v2a_net(in_dim: int, num_attributes: int) -> nn.Sequential:
    """Table II V2A: FC1024-ReLU, FC512-ReLU, FC d-Sigmoid."""
    return nn.Sequential(nn.Linear(in_dim, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(),
                         nn.Linear(512, num_attributes), nn.Sigmoid())


def t2a_net(in_dim: int, num_attributes: int) -> nn.Sequential:
    """Table II T2A: FC1000-ReLU, FC d-Sigmoid."""
    return nn.Sequential(nn.Linear(in_dim, 1000), nn.ReLU(), nn.Linear(1000, num_attributes), nn.Sigmoid())


def a2h_net(num_attributes: int, bits: int) -> nn.Sequential:
    """Table II A2H: FC128-ReLU, FC128-Sigmoid, FC bits."""
    return nn.Sequential(nn.Linear(num_attributes, 128), nn.ReLU(), nn.Linear(128, 128), nn.Sigmoid(),
                         nn.Linear(128, bits))


# ============================================================================================== the method
@register("agnet")
class AgNet(HashingModule):
    """AgNet (see the module docstring for the equations, the stages and the departures).

    Parameters
    ----------
    bits: code length.
    image_dim: image feature size (filled by run.py from the DataModule).
    text_dim: size of the class text vectors (``class_semantics[text_key]``); inferred in ``setup()`` if None.
    attribute_dim: number of attributes d; inferred from ``class_semantics[attribute_key]`` if None.
    num_classes: number of classes (filled by run.py; checked against the class semantics).
    text_key: class-semantics entry with the class-name text vectors (the TBIR queries; the DataModule's
        ``class_queries``).
    attribute_key: class-semantics entry with the class attributes.
    attribute_targets: how non-binary attribute matrices become BCE targets ("auto", "threshold", "binary").
    stage1_epochs: epochs of stage 1 (V2A/T2A, eq. 1); the rest of ``max_epochs`` is stage 2 (A2H, eq. 5).
    lam, eta: eq. (5) trade-offs (paper: 1, 1). balance: eq. (4) reading ("code" as printed, or "bit").
    lr, lr_decay, momentum, weight_decay: SGD; LR multiplied by ``(1 - lr_decay)`` after every iteration.
    image_key: name of the image modality in the batches.
    eval_kwargs: evaluation settings of :class:`~lightning_hash.module.HashingModule`.
    """

    #: False in the no-attribute baseline
    uses_attributes: bool = True

    def __init__(self, bits: int = 64, image_dim: Optional[int] = None, text_dim: Optional[int] = None,
                 attribute_dim: Optional[int] = None, num_classes: Optional[int] = None,
                 text_key: str = "word_vectors", attribute_key: str = "attributes", attribute_targets: str = "auto",
                 stage1_epochs: int = 20, lam: float = 1.0, eta: float = 1.0, balance: str = "bit",
                 loss_reduction: str = "pairs", optimizer: str = "sgd", lr: float = 1e-3, lr_decay: float = 1e-4, momentum: float = 0.9,
                 weight_decay: float = 0.0,
                 image_key: str = "image", **eval_kwargs) -> None:
        super().__init__(bits=bits, **eval_kwargs)
        self.save_hyperparameters()
        if image_dim is None or int(image_dim) <= 0:
            raise ValueError(f"{self.method_name}: image_dim must be a positive integer (run.py fills it from the "
                             "datamodule)")
        if int(stage1_epochs) < (1 if self.uses_attributes else 0):
            raise ValueError(f"{self.method_name}: stage1_epochs must be at least 1, got {stage1_epochs}")
        if balance not in ("code", "bit"):
            raise ValueError(f"balance must be 'code' or 'bit', got {balance!r}")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        if loss_reduction not in ("pairs", "sum"):
            raise ValueError(f"loss_reduction must be 'pairs' or 'sum', got {loss_reduction!r}")
        if not 0.0 <= lr_decay < 1.0:
            raise ValueError(f"lr_decay must lie in [0, 1), got {lr_decay}")
        attribute_targets_mode = attribute_targets
        if attribute_targets_mode not in ("auto", "threshold", "binary"):
            raise ValueError(f"attribute_targets must be 'auto', 'threshold' or 'binary', got {attribute_targets!r}")
        self.image_key, self.text_key = image_key, text_key
        self.v2a: Optional[nn.Module] = None
        self.t2a: Optional[nn.Module] = None
        self.a2h: Optional[nn.Module] = None
        self._A: Optional[torch.Tensor] = None        # [C, d] attribute targets
        self._W: Optional[torch.Tensor] = None        # [C, k] class text vectors
        self._seen: Optional[torch.Tensor] = None     # [C] bool, classes allowed in training
        self._ped: Dict[str, list] = {}
        if text_dim is not None and attribute_dim is not None:
            self._build(int(text_dim), int(attribute_dim))

    # ------------------------------------------------------------------ construction
    def _build(self, text_dim: int, attribute_dim: int) -> None:
        self.v2a = v2a_net(int(self.hparams.image_dim), attribute_dim)
        self.t2a = t2a_net(text_dim, attribute_dim)
        self.a2h = a2h_net(attribute_dim, self.bits)

    def setup(self, stage: str) -> None:
        """Read the class semantics from the DataModule; build the networks if their sizes were not given."""
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None or not hasattr(dm, "class_semantics"):
            if self.v2a is None:
                raise RuntimeError(f"{self.method_name}: needs a RetrievalDataModule with class semantics "
                                   f"('{self.text_key}', '{self.attribute_key_or_none}') to infer its sizes")
            return
        W = class_matrix(dm, self.text_key, "text vector", self.method_name, "text_key")
        A = (class_matrix(dm, self.hparams.attribute_key, "attribute", self.method_name, "attribute_key")
             if self.uses_attributes else None)
        hp = self.hparams
        text_dim = int(W.shape[1])
        attribute_dim = int(A.shape[1]) if A is not None else int(hp.attribute_dim or 64)
        if self.v2a is None:
            self._build(text_dim, attribute_dim)
            hp.text_dim, hp.attribute_dim = text_dim, attribute_dim      # saved in checkpoints
        elif (int(hp.text_dim), int(hp.attribute_dim)) != (text_dim, attribute_dim):
            raise ValueError(f"{self.method_name}: built for text_dim={hp.text_dim}, attribute_dim={hp.attribute_dim}"
                             f" but the datamodule's class semantics have {text_dim} and {attribute_dim}")
        if hp.num_classes is not None and int(hp.num_classes) != W.shape[0]:
            raise ValueError(f"{self.method_name}: num_classes={hp.num_classes} but the class semantics have "
                             f"{W.shape[0]} rows")
        self._W = W
        self._A = attribute_targets(A, hp.attribute_targets) if A is not None else None
        seen = seen_class_mask(dm, W.shape[0])
        split = getattr(dm, "split", None)
        if stage == "fit" and split is not None and split.zero_shot:
            require_training_split_classes(dm, seen, self.method_name)
        self._seen = seen

    @property
    def attribute_key_or_none(self) -> Optional[str]:
        return self.hparams.attribute_key if self.uses_attributes else None

    def _require_semantics(self) -> None:
        if self._W is None:
            raise RuntimeError(f"{self.method_name}: class semantics not loaded; train through a Trainer with the "
                               "DataModule (setup() reads them)")

    # ------------------------------------------------------------------ stages
    @property
    def stage(self) -> int:
        """1 (attribute nets) or 2 (A2H), from the trainer's epoch, so a resume continues the right stage."""
        epoch = self._trainer.current_epoch if self._trainer is not None else 0
        return 1 if epoch < int(self.hparams.stage1_epochs) else 2

    def on_fit_start(self) -> None:
        max_epochs = self.trainer.max_epochs
        if self.uses_attributes and max_epochs is not None and 0 < max_epochs <= int(self.hparams.stage1_epochs):
            raise ValueError(f"{self.method_name}: max_epochs={max_epochs} leaves no epoch for stage 2 (A2H) after "
                             f"stage1_epochs={self.hparams.stage1_epochs}; raise max_epochs")

    # ------------------------------------------------------------------ encoding
    def predict_attributes(self, batch, modality: str) -> torch.Tensor:
        if modality == self.image_key:
            return self.v2a(batch[modality])
        if modality == self.text_key:
            return self.t2a(batch[modality])
        raise ValueError(f"{self.method_name} encodes '{self.image_key}' and '{self.text_key}', not '{modality}'")

    def encode(self, batch, modality):
        return self.a2h(self.predict_attributes(batch, modality))

    # ------------------------------------------------------------------ training
    def _batch_semantics(self, labels: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Per-item class text vector and attribute target (labels: multi-hot ``[n, C]``)."""
        self._require_semantics()
        lab = labels.float()
        require_training_classes(lab, self._seen, self.method_name)
        weights = lab / lab.sum(dim=1, keepdim=True).clamp_min(1.0)
        z = weights @ self._W.to(lab.device)
        a = weights @ self._A.to(lab.device) if self._A is not None else None
        return z, a

    def training_step(self, batch, batch_idx):
        x, labels = batch[self.image_key], batch["label"]
        z, a = self._batch_semantics(labels)
        n = x.shape[0]
        if self.stage == 1:
            a_v, a_t = self.v2a(x), self.t2a(z)
            l_v, l_t = attribute_bce(a_v, a), attribute_bce(a_t, a)
            loss = l_v + l_t
            self.log("train/loss", loss, batch_size=n, prog_bar=True)
            self.log_dict({"train/loss_v2a": l_v, "train/loss_t2a": l_t}, batch_size=n)
            self.log_dict({f"train/PED/{self.image_key}": positive_error_distance(a_v.detach(), a),
                           f"train/PED/{self.text_key}": positive_error_distance(a_t.detach(), a)}, batch_size=n)
            self.log("train/stage", 1.0, batch_size=n)
            return loss
        with torch.no_grad():
            self.v2a.eval(), self.t2a.eval()
            a_v, a_t = self.v2a(x), self.t2a(z)
        P, Q = self.a2h(a_v), self.a2h(a_t)
        S_c = category_similarity(labels)
        S_att = attribute_similarity(a, S_c)
        loss, terms = a2h_loss(P, Q, S_c, S_att, lam=self.hparams.lam, eta=self.hparams.eta,
                               balance=self.hparams.balance)
        loss = loss / self._loss_scale(n)
        self.log("train/loss", loss, batch_size=n, prog_bar=True)
        self.log_dict({f"train/loss_{k}": v for k, v in terms.items()}, batch_size=n)
        self.log("train/stage", 2.0, batch_size=n)
        return loss

    def _loss_scale(self, n: int) -> float:
        """Eq. (5) is divided by ``n^2`` (``loss_reduction="pairs"``) or used as printed (``"sum"``)."""
        return float(n * n) if self.hparams.loss_reduction == "pairs" else 1.0

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        decay = 1.0 - float(hp.lr_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: decay ** step)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    # ------------------------------------------------------------------ evaluation: PED, and no codes in stage 1
    def _eval_ped(self, batch) -> None:
        if self._A is None:
            return
        labels = batch["label"].float()
        a = (labels / labels.sum(dim=1, keepdim=True).clamp_min(1.0)) @ self._A.to(labels.device)
        for modality in (self.image_key, self.text_key):
            if modality in batch:
                num, den = ped_sums(self.predict_attributes(batch, modality).detach(), a)
                acc = self._ped.setdefault(modality, [0.0, 0.0])
                acc[0] += num
                acc[1] += den

    def _log_ped(self, split: str) -> None:
        for modality, (num, den) in self._ped.items():
            # exact under DDP: numerator and denominator are summed over processes, then divided
            sums = self.trainer.strategy.reduce(torch.tensor([num, den], device=self.device, dtype=torch.float64),
                                                reduce_op="sum")
            value = float(sums[0] / sums[1]) if float(sums[1]) > 0 else math.nan
            self.log(f"{split}/PED/{modality}", value, sync_dist=False, rank_zero_only=False)
        self._ped = {}

    def _in_stage1(self) -> bool:
        return (self.uses_attributes and self._trainer is not None and self.trainer.state.fn == "fit"
                and self.stage == 1)

    def on_validation_epoch_start(self) -> None:
        self._ped = {}
        if not self._in_stage1():
            super().on_validation_epoch_start()

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._eval_ped(batch)
        if not self._in_stage1():
            super().validation_step(batch, batch_idx, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._log_ped("val")
        if self._in_stage1():
            # codes are not trained yet: a sentinel below any mAP, so checkpoint selection skips stage 1
            key = f"val/{self.select_metric}/mean"
            self.log(key, -1.0, prog_bar=key.startswith("val/mAP@all"), sync_dist=False, rank_zero_only=False)
        else:
            super().on_validation_epoch_end()

    def on_test_epoch_start(self) -> None:
        self._ped = {}
        super().on_test_epoch_start()

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._eval_ped(batch)
        super().test_step(batch, batch_idx, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self._log_ped("test")
        super().on_test_epoch_end()


@register("agnet_noattr")
class AgNetNoAttr(AgNet):
    """No-attribute baseline: a supervised cross-modal code learner on the seen classes only.

    Image: V2A's hidden layers (FC1024-ReLU, FC512-ReLU) then FC bits; text: T2A's hidden layer (FC1000-ReLU)
    then FC bits; trained end to end, one stage, with ``L_cs + eta L_reg`` (eqs. 2, 4): AgNet's networks and
    code loss without the attribute space (no attribute layer, no A2H, no ``L_as``). Keeping the Sigmoid
    attribute-sized bottleneck and A2H without attribute supervision collapsed to one code on every setting
    tried (SGD and Adam, LR 1e-4..1e-2, eta 0.1..1), so the bottleneck is dropped.
    """

    uses_attributes = False      # same constructor as AgNet; stage1_epochs and lam are ignored

    def _build(self, text_dim: int, attribute_dim: int) -> None:
        self.v2a = nn.Sequential(nn.Linear(int(self.hparams.image_dim), 1024), nn.ReLU(), nn.Linear(1024, 512),
                                 nn.ReLU(), nn.Linear(512, self.bits))
        self.t2a = nn.Sequential(nn.Linear(text_dim, 1000), nn.ReLU(), nn.Linear(1000, self.bits))
        self.a2h = nn.Identity()

    @property
    def stage(self) -> int:
        return 2

    def training_step(self, batch, batch_idx):
        x, labels = batch[self.image_key], batch["label"]
        z, _ = self._batch_semantics(labels)
        P, Q = self.encode({self.image_key: x}, self.image_key), self.encode({self.text_key: z}, self.text_key)
        loss, terms = a2h_loss(P, Q, category_similarity(labels), None, eta=self.hparams.eta,
                               balance=self.hparams.balance)
        n = x.shape[0]
        loss = loss / self._loss_scale(n)
        self.log("train/loss", loss, batch_size=n, prog_bar=True)
        self.log_dict({f"train/loss_{k}": v for k, v in terms.items()}, batch_size=n)
        return loss

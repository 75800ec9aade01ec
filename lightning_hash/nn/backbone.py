"""The timm backbone factory and wrapper: raw images -> feature vectors, with an honest message when weights are missing.

``timm.create_model(name, pretrained=True)`` downloads weights from the Hugging Face Hub. Without a network
(this project's CI, many clusters) that fails; :func:`create_backbone` turns the failure into
:class:`PretrainedWeightsUnavailable` telling the user how to provide the weights. ``HF_HUB_OFFLINE=1`` makes
the failure immediate instead of after the Hub client's retries.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

PathLike = Union[str, Path]


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights for a timm backbone could not be loaded (typically: no network, empty cache)."""


def _offline_help(name: str, cause: BaseException) -> str:
    return (f"pretrained weights for timm model {name!r} are not available ({type(cause).__name__}: {cause}).\n"
            "To provide them offline, do one of:\n"
            f"  1. on a machine with network run `huggingface-cli download timm/{name}` (or "
            f"`timm.create_model({name!r}, pretrained=True)`), then copy ~/.cache/huggingface (or point HF_HOME "
            "at the copy) and set HF_HUB_OFFLINE=1;\n"
            "  2. pass checkpoint='/path/to/weights.safetensors' (or .pth): it is loaded through timm's "
            "pretrained_cfg_overlay=dict(file=...);\n"
            "  3. pass pretrained=False to use randomly initialised weights (the pipeline runs, but the features "
            "carry no pretrained semantics).")


def create_backbone(name: str, *, pretrained: bool = True, checkpoint: Optional[PathLike] = None, seed: int = 0):
    """Create a timm feature extractor (``num_classes=0``) in eval mode.

    Parameters
    ----------
    name:
        a timm model name, e.g. ``"resnet50"``, ``"vit_base_patch16_224.augreg_in21k"``.
    pretrained:
        load pretrained weights (from the Hub cache, or from ``checkpoint``).
    checkpoint:
        a local weights file (``.safetensors`` / ``.pth``); implies pretrained weights from that file.
    seed:
        seed of the random initialisation when ``pretrained=False`` (so cached features stay reproducible).

    Raises
    ------
    ValueError
        unknown model name (with close matches).
    PretrainedWeightsUnavailable
        the weights could not be obtained (see the module docstring for the remedies).
    """
    import timm
    import torch

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0][:8]}*")[:10]
        raise ValueError(f"unknown timm model {name!r}; close names: {close}")
    if checkpoint is not None:
        ck = Path(checkpoint).expanduser()
        if not ck.is_file():
            raise FileNotFoundError(f"{ck}: checkpoint file not found (expected a .safetensors or .pth state dict "
                                    f"for timm model {name!r})")
        try:
            model = timm.create_model(name, pretrained=True, num_classes=0,
                                      pretrained_cfg_overlay=dict(file=str(ck)))
        except Exception as e:
            raise PretrainedWeightsUnavailable(f"{ck}: could not load weights for timm model {name!r}: {e}") from e
    elif pretrained:
        try:
            model = timm.create_model(name, pretrained=True, num_classes=0)
        except Exception as e:
            raise PretrainedWeightsUnavailable(_offline_help(name, e)) from e
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(name, pretrained=False, num_classes=0)
    return model.eval()


class TimmBackbone(nn.Module):
    """Image -> pooled feature vector through a timm model (``num_classes=0``), for methods on raw images.

    Parameters
    ----------
    name, pretrained, checkpoint: see :func:`create_backbone`.
    trainable: whether the backbone's parameters receive gradients.
    """

    def __init__(self, name: str, pretrained: bool = True, checkpoint: Optional[PathLike] = None,
                 trainable: bool = True) -> None:
        super().__init__()
        self.model = create_backbone(name, pretrained=pretrained, checkpoint=checkpoint).train()
        self.out_dim = int(self.model.num_features)
        self.model.requires_grad_(trainable)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"TimmBackbone expects images [B, C, H, W], got shape {tuple(images.shape)}")
        return self.model(images)

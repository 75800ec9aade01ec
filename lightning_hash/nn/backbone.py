"""A timm backbone that maps raw images to a feature vector, with an honest message when weights are missing."""
from __future__ import annotations

import torch
from torch import nn


def create_timm_model(name: str, pretrained: bool, **kwargs) -> nn.Module:
    """``timm.create_model(name, pretrained=..., num_classes=0)`` with a clear error when weights are unavailable.

    This machine class (and many clusters) has no network access: timm cannot download weights there. The
    error tells the user how to provide them instead of surfacing a connection traceback.
    """
    import timm

    if name not in timm.list_models(pretrained=False) and name not in timm.list_models(pretrained=True):
        raise ValueError(f"image_backbone: unknown timm model '{name}' (see timm.list_models())")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    except Exception as err:  # network / hub errors differ between timm and huggingface_hub versions
        if not pretrained:
            raise
        raise RuntimeError(
            f"Could not load pretrained weights for timm model '{name}' ({type(err).__name__}: {err}). "
            "Without network access, put the weights in the Hugging Face cache (HF_HOME) beforehand, or pass "
            "pretrained_file=/path/to/weights.safetensors, or run with pretrained=False "
            "(random initialisation; results will not match the paper).") from err


class TimmBackbone(nn.Module):
    """Image -> pooled feature vector through a timm model (``num_classes=0``).

    Parameters
    ----------
    name: timm model name, e.g. ``"resnet18"`` or ``"vgg16"``.
    pretrained: load ImageNet weights (fails with a clear message when they cannot be obtained).
    pretrained_file: optional local weights file (passed to timm as ``pretrained_cfg_overlay``).
    trainable: whether the backbone's parameters receive gradients.
    """

    def __init__(self, name: str, pretrained: bool = True, pretrained_file: str | None = None,
                 trainable: bool = True) -> None:
        super().__init__()
        kwargs = {}
        if pretrained_file:
            kwargs["pretrained_cfg_overlay"] = dict(file=pretrained_file)
        self.model = create_timm_model(name, pretrained=pretrained, **kwargs)
        self.out_dim = int(self.model.num_features)
        self.model.requires_grad_(trainable)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"TimmBackbone expects images [B, C, H, W], got shape {tuple(images.shape)}")
        return self.model(images)

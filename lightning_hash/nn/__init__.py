"""Reusable layers: MLP heads and the timm backbone wrapper."""
from lightning_hash.nn.mlp import mlp
from lightning_hash.nn.backbone import TimmBackbone

__all__ = ["mlp", "TimmBackbone"]

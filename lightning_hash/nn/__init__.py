"""Reusable layers: MLP heads and the timm backbone wrapper."""
from lightning_hash.nn.mlp import mlp
from lightning_hash.nn.backbone import TimmBackbone
from lightning_hash.nn.zsih_layers import (AttentionPooling, ConcatFusion, GaussianDecoder, GraphConvolution,
                                           KroneckerFusion, MFBFusion, StochasticBinary, normalized_adjacency,
                                           semantic_adjacency, stochastic_binary)

__all__ = ["mlp", "TimmBackbone", "AttentionPooling", "KroneckerFusion", "ConcatFusion", "MFBFusion",
           "GraphConvolution", "semantic_adjacency", "normalized_adjacency", "StochasticBinary", "stochastic_binary",
           "GaussianDecoder"]

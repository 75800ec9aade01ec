"""Image features: the hand-crafted GIST-512 descriptor (:mod:`.gist`) and the cached, resumable deep-feature
extraction through timm backbones (:mod:`.extract`, imported on use: it loads torch networks)."""
from lightning_hash.features.gist import GIST_DEFAULTS, gabor_transfer_functions, gist, gist_dimension, prefilter

__all__ = ["gist", "gist_dimension", "gabor_transfer_functions", "prefilter", "GIST_DEFAULTS"]

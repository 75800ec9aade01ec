"""Hand-crafted image descriptors used by the classic benchmarks (e.g. GIST-512 for CIFAR-10)."""
from lightning_hash.features.gist import GIST_DEFAULTS, gabor_transfer_functions, gist, gist_dimension, prefilter

__all__ = ["gist", "gist_dimension", "gabor_transfer_functions", "prefilter", "GIST_DEFAULTS"]

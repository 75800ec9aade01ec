"""Readers: files in a published layout -> :class:`datamodules.arrays.DatasetArrays`.

One module per family of formats:

=================  =====================================================================================
module             reads
=================  =====================================================================================
``mat``            MATLAB v5 (scipy) and v7.3 (HDF5, transposed) files, cell arrays, char arrays
``flickr``         MIRFlickr-25K / NUS-WIDE in the DCMH/DJSRH layout (``LAll``, ``YAll``, ``IAll`` / ``XAll``)
``unified``        one ``.mat`` with ``I_tr, T_tr, L_tr, I_te, T_te, L_te, I_db, T_db, L_db``
``wiki``           Wiki ``raw_features.mat`` + ``*_txt_img_cat.list`` + ``categories.list``
``images``         CIFAR-10 (JPEG folders, ``cifar10-jpeg.tar.gz``, python batches), MNIST IDX
``xlsa17``         zero-shot ``res101.mat`` + ``att_splits.mat``
``multiview``      any ``X`` cell of views + ``Y`` file (generic), CUB-10, UCI handwritten
``dscmr``          DSCMR split folders (``train_img.mat``, ``test_txt.mat``, ``*_img_lab.mat``, ...)
``seph``           SePH/RoPH struct ``.mat`` (``data.X1/X2/Y`` d x n, ``split.ind_train/ind_test`` 1-based)
``nrch``           NRCH-style HDF5 (``Img/Tag/Lab`` x ``Train/Query/DataBase``)
``bundle``         the generic ``.npz`` / ``.h5`` bundle for users' own data
``semantics``      class attributes (AwA) and class word vectors (Sketchy / TU-Berlin)
``features``       raw images -> timm backbone features, cached on disk
=================  =====================================================================================

Conventions shared by every reader
----------------------------------
* Labels: ``int64 [n]`` class indices from 0 for single-label sets, ``float32 [n, C]`` 0/1 for multi-label sets.
* Features ``float32 [n, d]``; raw images ``uint8 [n, H, W, C]``.
* ``fixed_splits`` hold the published partition under the publisher's names (``train``/``test`` for CIFAR-10
  and MNIST; ``trainval``/``train``/``val``/``test_seen``/``test_unseen`` for xlsa17). Where the published split
  *is* the retrieval protocol (Wiki, the unified layout, user bundles) it is named with the protocol's sets
  ``train``, ``query``, ``database`` (and ``val``).
* Errors: a missing file raises ``FileNotFoundError`` naming it and the expected layout; a missing variable a
  ``KeyError`` listing the keys found; mismatched rows, NaN/inf, labels out of range a ``ValueError``. Nothing
  is truncated, dropped or silently repaired.
"""
from .bundle import BUNDLE_LAYOUT, read_bundle, write_bundle
from .features import PretrainedWeightsUnavailable, create_backbone, extract_features, featurize
from .flickr import read_dcmh, read_mirflickr, read_nuswide
from .images import (CIFAR10_CLASSES, read_cifar10, read_cifar10_batches, read_idx, read_image_folders,
                     read_image_tar, read_mnist)
from .mat import cell_to_list, cellstr, is_v73, load_mat, mat_keys
from .dscmr import DSCMR_LAYOUT, read_dscmr
from .nrch import NRCH_LAYOUT, read_nrch
from .seph import SEPH_LAYOUT, read_seph
from .multiview import HANDWRITTEN_VIEWS, read_cub10, read_handwritten, read_multiview
from .semantics import (AWA_UNSEEN_CLASSES, ClassSemantics, attach_semantics, normalize_class_name,
                        read_awa_attributes, read_sketch_word2vec, read_word_vectors)
from .unified import read_unified
from .wiki import read_wiki
from .xlsa17 import read_att_splits, read_xlsa17
from lightning_hash.cache import default_cache_dir

from ._common import MissingKeyError

__all__ = [
    "read_bundle", "write_bundle", "BUNDLE_LAYOUT",
    "PretrainedWeightsUnavailable", "create_backbone", "extract_features", "featurize",
    "read_dcmh", "read_mirflickr", "read_nuswide", "DSCMR_LAYOUT", "read_dscmr",
    "NRCH_LAYOUT", "read_nrch", "SEPH_LAYOUT", "read_seph",
    "CIFAR10_CLASSES", "read_cifar10", "read_cifar10_batches", "read_idx", "read_image_folders", "read_image_tar",
    "read_mnist",
    "cell_to_list", "cellstr", "is_v73", "load_mat", "mat_keys",
    "HANDWRITTEN_VIEWS", "read_cub10", "read_handwritten", "read_multiview",
    "AWA_UNSEEN_CLASSES", "ClassSemantics", "attach_semantics", "normalize_class_name", "read_awa_attributes",
    "read_sketch_word2vec", "read_word_vectors",
    "read_unified", "read_wiki", "read_att_splits", "read_xlsa17",
    "MissingKeyError", "default_cache_dir",
]

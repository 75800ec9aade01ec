"""lightning_hash/nn/backbone.py: strict loading of user weight files (create_backbone, the features_only networks
of ZSIH) and the backbone's own input preprocessing (BackbonePreprocess against timm's eval transform on PIL)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")

from lightning_hash.nn.backbone import (BackbonePreprocess, CheckpointError, TimmBackbone,  # noqa: E402
                                        create_backbone, create_features_model, load_checkpoint_strict,
                                        read_state_dict)

TINY = "test_resnet"           # timm's test model: 160x160 input, bilinear, crop_pct 0.95, mean/std 0.5
RENAMED = "test_convnext"      # its features_only wrapper renames modules (stages.0 -> stages_0)


def _source(name: str = TINY, seed: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False).eval()   # with its classifier head


def _save(sd, path):
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    return path


def _assert_loaded(model: torch.nn.Module, sd) -> None:
    own = model.state_dict()
    assert own, "empty model"
    for k, v in own.items():
        assert torch.equal(v, sd[k]), k


# ============================================================================================== strict loading
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_checkpoint_loads_exactly(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    src = _source()
    sd = src.state_dict()
    assert "fc.weight" in sd                                   # the file carries the classifier head
    f = _save(sd, tmp_path / f"w{suffix}")
    m = create_backbone(TINY, checkpoint=f)
    _assert_loaded(m, sd)
    assert "fc.weight" not in m.state_dict() and not m.training
    # and it differs from a random initialisation with the same seed
    rnd = create_backbone(TINY, pretrained=False)
    assert not torch.equal(rnd.state_dict()["conv1.0.weight"], sd["conv1.0.weight"])


def test_renamed_keys_raise_naming_the_file_and_a_key(tmp_path):
    sd = {k.replace("layer1.", "block1."): v for k, v in _source().state_dict().items()}
    f = _save(sd, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError) as info:
        create_backbone(TINY, checkpoint=f)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(f) in msg and repr(TINY) in msg
    assert "block1." in msg and "layer1." in msg                      # unexpected and missing keys both shown
    assert re.search(r"\d+ of the model's \d+ keys missing", msg) and re.search(r"\d+ unexpected keys", msg)


def test_missing_key_raises(tmp_path):
    sd = _source().state_dict()
    del sd["layer2.0.conv1.weight"]
    f = _save(sd, tmp_path / "missing.safetensors" if _has_safetensors() else tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"1 of the model's \d+ keys missing.*layer2\.0\.conv1\.weight") as info:
        create_backbone(TINY, checkpoint=f)
    assert str(f) in str(info.value)


def test_wrong_shape_raises(tmp_path):
    sd = _source().state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(3, 3, 1, 1)
    f = _save(sd, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"1 keys with a different shape.*layer1\.0\.conv1\.weight: file "
                                              r"\(3, 3, 1, 1\)") as info:
        create_backbone(TINY, checkpoint=f)
    assert str(f) in str(info.value)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file_is_a_clean_error(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    f = _save(_source().state_dict(), tmp_path / f"w{suffix}")
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(f))) as info:
        create_backbone(TINY, checkpoint=f)
    assert "truncated" in str(info.value)
    f.write_bytes(b"")                                                      # empty file, too
    with pytest.raises(CheckpointError, match=re.escape(str(f))):
        read_state_dict(f)


def test_wrapped_and_prefixed_files_load(tmp_path):
    sd = _source().state_dict()
    cases = {"module.pth": {f"module.{k}": v for k, v in sd.items()},
             "state_dict.pth": {"state_dict": sd, "epoch": 3},
             "model.pth": {"model": sd},
             "wrapped_module.pth": {"state_dict": {f"module.{k}": v for k, v in sd.items()}}}
    for fname, obj in cases.items():
        f = tmp_path / fname
        torch.save(obj, f)
        _assert_loaded(create_backbone(TINY, checkpoint=f), sd)


def test_other_head_and_missing_batch_counters_are_allowed(tmp_path):
    sd = _source().state_dict()
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(10, sd["fc.weight"].shape[1]), torch.zeros(10)   # a 10-class head
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    f = _save(sd, tmp_path / "ft.pth")
    m = create_backbone(TINY, checkpoint=f)
    for k, v in m.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, sd[k]), k
    # and a file without any head (saved from a num_classes=0 network) loads too
    headless = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    _assert_loaded(create_backbone(TINY, checkpoint=_save(headless, tmp_path / "headless.pth")),
                   {**headless, **{k: v for k, v in m.state_dict().items() if k.endswith("num_batches_tracked")}})


def test_not_a_state_dict_is_refused(tmp_path):
    f = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], f)
    with pytest.raises(CheckpointError, match=re.escape(str(f)) + ".*not a state dict"):
        create_backbone(TINY, checkpoint=f)
    f2 = tmp_path / "mixed.pth"
    torch.save({"conv1.0.weight": torch.zeros(2), "note": 3}, f2)
    with pytest.raises(CheckpointError, match="non-tensor entries"):
        read_state_dict(f2)
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        create_backbone(TINY, checkpoint=tmp_path / "none.pth")


def test_load_checkpoint_strict_hints_at_a_uniform_prefix(tmp_path):
    sd = {f"backbone.{k}": v for k, v in _source().state_dict().items()}
    model = timm.create_model(TINY, pretrained=False, num_classes=0)
    with pytest.raises(CheckpointError, match=r"prefixed by 'backbone\.'"):
        load_checkpoint_strict(model, _save(sd, tmp_path / "pre.pth"), model_name=TINY)


def _has_safetensors() -> bool:
    try:
        import safetensors  # noqa: F401
        return True
    except ImportError:
        return False


# ---------------------------------------------------------------------------------------- features_only (ZSIH)
@pytest.mark.parametrize("name", [TINY, RENAMED])
def test_features_only_network_gets_the_file_weights(tmp_path, name):
    from lightning_hash.methods.zsih import create_feature_map_backbone

    src = _source(name)
    f = _save(src.state_dict(), tmp_path / "w.pth")
    net = create_feature_map_backbone(name, checkpoint=str(f)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[-1], src.forward_features(x), rtol=0, atol=0)
    assert "state_dict" not in (net.pretrained_cfg or {})             # no second copy of the weights kept
    bad = {k.replace("stages.", "levels.").replace("layer", "lvl"): v for k, v in src.state_dict().items()}
    bad_file = _save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="(?s)" + re.escape(str(bad_file)) + ".*unexpected keys"):
        create_feature_map_backbone(name, checkpoint=str(bad_file))


def test_features_transfer_is_verified(tmp_path, monkeypatch):
    f = _save(_source(RENAMED).state_dict(), tmp_path / "w.pth")
    real = timm.create_model

    def forgetful(*args, **kwargs):              # a timm that ignores the handed-over weights
        kwargs.pop("pretrained_cfg_overlay", None)
        kwargs["pretrained"] = False
        return real(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", forgetful)
    with pytest.raises(CheckpointError, match="did not receive the loaded weights"):
        create_features_model(RENAMED, f, out_indices=(-1,))


def test_zsih_backbone_checkpoint_is_loaded(tmp_path):
    from lightning_hash.methods.zsih import ZSIH

    src = _source()
    f = _save(src.state_dict(), tmp_path / "w.pth")
    m = ZSIH(bits=8, backbone=TINY, backbone_checkpoint=str(f), semantic_dim=4, num_classes=3, fusion_width=4,
             gcn_hidden=8)
    for enc in (m.enc_image, m.enc_sketch):
        sd = enc.cnn.state_dict()
        assert torch.equal(sd["conv1.0.weight"], src.state_dict()["conv1.0.weight"])
        assert torch.equal(sd["layer4.0.conv1.weight"], src.state_dict()["layer4.0.conv1.weight"])
    bad = _save({k: v for k, v in src.state_dict().items() if not k.startswith("layer4.")}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="layer4"):
        ZSIH(bits=8, backbone=TINY, backbone_checkpoint=str(bad), semantic_dim=4, num_classes=3)


# ============================================================================================== preprocessing
def _timm_eval(cfg, img_hwc: np.ndarray) -> torch.Tensor:
    from PIL import Image
    from timm.data import create_transform

    pil = Image.fromarray(img_hwc if img_hwc.shape[-1] == 3 else img_hwc[..., 0]).convert("RGB")
    return create_transform(**cfg, is_training=False)(pil)


def _ours(cfg, img_hwc: np.ndarray) -> torch.Tensor:
    pre = BackbonePreprocess(**{k: v for k, v in cfg.items()})
    return pre(torch.from_numpy(img_hwc).permute(2, 0, 1)[None])[0]


@pytest.mark.parametrize("name", [TINY, "resnet10t"])
@pytest.mark.parametrize("hw", [(37, 50), (300, 260), (32, 32)])
def test_matches_timm_eval_transform_on_pil(name, hw):
    if not timm.is_model(name):
        pytest.skip(f"timm has no {name}")
    model = timm.create_model(name, pretrained=False, num_classes=0)
    cfg = timm.data.resolve_model_data_config(model)
    img = np.random.default_rng(hw[0]).integers(0, 256, (*hw, 3), dtype=np.uint8)
    ref = _timm_eval(cfg, img)
    pre = BackbonePreprocess.from_model(model)
    ours = pre(torch.from_numpy(img).permute(2, 0, 1)[None])[0]
    assert ours.shape == ref.shape == (3, *cfg["input_size"][1:])
    assert (ours - ref).abs().mean() < 0.05, float((ours - ref).abs().mean())
    # float images in [0, 1] (what the datamodules serve) give the same as uint8
    ours_f = pre(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)[0]
    torch.testing.assert_close(ours_f, ours)


@pytest.mark.parametrize("crop_mode", ["center", "squash", "border"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_matches_timm_for_non_square_inputs_and_crop_modes(crop_mode, interpolation):
    cfg = dict(input_size=(3, 48, 64), interpolation=interpolation, crop_pct=0.9, crop_mode=crop_mode,
               mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    for hw in [(40, 90), (120, 70)]:
        img = np.random.default_rng(sum(hw)).integers(0, 256, (*hw, 3), dtype=np.uint8)
        ref, ours = _timm_eval(cfg, img), _ours(cfg, img)
        assert ours.shape == ref.shape == (3, 48, 64)
        assert (ours - ref).abs().mean() < 0.05, (hw, float((ours - ref).abs().mean()))


def test_grey_images_are_repeated_to_rgb():
    cfg = timm.data.resolve_model_data_config(timm.create_model(TINY, pretrained=False, num_classes=0))
    img = np.random.default_rng(0).integers(0, 256, (30, 30, 1), dtype=np.uint8)
    ref, ours = _timm_eval(cfg, img), _ours(cfg, img)
    assert ours.shape == ref.shape and (ours - ref).abs().mean() < 0.05


def test_value_range_and_layout_are_checked():
    pre = BackbonePreprocess(input_size=(3, 16, 16))
    x = torch.rand(2, 3, 20, 20)
    assert pre(x).shape == (2, 3, 16, 16)
    normalised = (x - 0.45) / 0.225
    with pytest.raises(ValueError, match="normalised twice"):
        pre(normalised)
    with pytest.raises(ValueError, match="divided by 255"):
        pre(x * 255)
    with pytest.raises(ValueError, match="channels-last"):
        pre(torch.rand(2, 20, 20, 3))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        pre(torch.rand(3, 20, 20))
    with pytest.raises(ValueError, match="int64"):
        pre(torch.zeros(2, 3, 20, 20, dtype=torch.int64))
    with pytest.raises(ValueError, match="lanczos"):
        BackbonePreprocess(interpolation="lanczos")
    assert dict(pre.state_dict()) == {}                                     # non-persistent: checkpoints unchanged


def test_timm_backbone_feeds_the_preprocessed_input():
    bb = TimmBackbone(TINY, pretrained=False).eval()
    assert all(k.startswith("model.") for k in bb.state_dict())
    seen = []
    bb.model.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = bb(x)
        ref = bb.model(bb.preprocess(x))
    assert seen[0].shape == (2, 3, 160, 160)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(seen[0].mean(dim=(0, 2, 3)), ((x - 0.5) / 0.5).mean(dim=(0, 2, 3)), atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="normalised twice"):
        bb((x - 0.5) / 0.5)


def test_djsrh_and_zsih_backbones_preprocess_in_training_and_evaluation():
    from lightning_hash.methods.djsrh import DJSRH
    from lightning_hash.methods.zsih import ZSIH

    d = DJSRH(bits=8, text_dim=5, image_backbone=TINY, pretrained=False, finetune_backbone=True, image_hidden=0)
    d.log = lambda *a, **k: None
    shapes = []
    for net in (d.backbone.model, d.feature_net.model):               # the trained backbone and the frozen copy
        net.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape)))
    batch = {"image": torch.rand(4, 3, 32, 32), "text": torch.rand(4, 5)}
    d.training_step(batch, 0).backward()
    d.eval()
    with torch.no_grad():
        d.encode(batch, "image")
    assert shapes == [(4, 3, 160, 160)] * 3
    with pytest.raises(ValueError, match="normalised twice"):
        d.encode({"image": batch["image"] - 0.5}, "image")

    z = ZSIH(bits=8, backbone=TINY, semantic_dim=4, num_classes=3, fusion_width=4, gcn_hidden=8)
    z._W = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    shapes.clear()
    z.enc_sketch.cnn.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape)))
    zb = {"image": torch.rand(4, 3, 32, 32), "sketch": torch.rand(4, 1, 28, 28),    # grey sketches
          "label": torch.eye(3)[[0, 1, 0, 1]], "index": torch.arange(4)}
    loss, _ = z.compute_loss(zb)
    loss.backward()
    codes = z.encode({"sketch": zb["sketch"]}, "sketch")
    assert codes.shape == (4, 8)
    assert shapes and all(s == (4, 3, 160, 160) for s in shapes)
    with pytest.raises(ValueError, match="normalised twice"):
        z.encode({"image": zb["image"] * 2 - 1}, "image")

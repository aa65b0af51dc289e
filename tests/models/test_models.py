"""Detector shapes, anchor counts, init, predict, channels_last, rebuild, and a few SGD steps."""

from __future__ import annotations

import math

import pytest
import torch

from mgdet import anchors as anchor_lib
from mgdet.assign import STRATEGIES
from mgdet.models import Detector, build_detector
from mgdet.models.kinds import AnchorKind, PointKind
from mgdet.models.layers import PRIOR_BIAS


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Two intra-op threads on a shared 2-core machine oversubscribe badly; one thread is 10x faster."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = {"neck_width": 16, "head_width": 16}
COMBOS = [
    ("fssd", "resnet18", {}),
    ("fssd", "vgg16", {}),
    ("fssd", "mobilenet_v2", {}),
    ("retinanet", "resnet18", {}),
    ("retinanet", "vgg16", {}),
    ("retinanet", "mobilenet_v2", {}),
    ("rfbnet", "vgg16", {}),
    ("fcos", "resnet18", {}),
    ("fcos", "vgg16", {}),
    ("fcos", "mobilenet_v2", {}),
    ("retinanet", "resnet18", {"canonical": True}),
]


def _ids(c: tuple) -> str:
    return f"{c[0]}-{c[1]}" + ("-canonical" if c[2].get("canonical") else "")


def _expected_count(model: Detector, size: int) -> int:
    cells = sum(math.ceil(size / s) ** 2 for s in model.level_strides)
    return cells * model.kind.per_location


@pytest.mark.parametrize("combo", COMBOS, ids=_ids)
@pytest.mark.parametrize("size", [320, 160])
def test_output_shapes_and_anchor_counts(combo: tuple, size: int) -> None:
    name, backbone, kw = combo
    torch.manual_seed(0)
    model = build_detector(name, backbone, num_classes=5, input_size=size, **TINY, **kw).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, size, size))
    a = _expected_count(model, size)
    if size == 320 and name != "fcos" and not kw.get("canonical"):
        assert a == 12_750  # the paper layout: 6 * (40^2 + 20^2 + 10^2 + 5^2)
    assert out["cls_logits"].shape == (1, a, 5)
    assert out["box_deltas"].shape == (1, a, 4)
    if name == "fcos":
        assert out["centerness"].shape == (1, a)
        pr = model.priors()
        assert pr.centres.shape == (a, 2) and pr.strides.shape == (a,) and pr.ranges.shape == (a, 2)
        assert isinstance(model.kind, PointKind) and torch.equal(pr.boxes, torch.cat((pr.centres, pr.centres), 1))
    else:
        layout = anchor_lib.paper_layout() if not kw.get("canonical") else anchor_lib.retinanet_layout()
        assert isinstance(model.kind, AnchorKind) and model.priors().ranges is None
        assert torch.equal(model.priors().boxes, anchor_lib.generate_anchors(layout, size))
    assert torch.isfinite(out["cls_logits"]).all() and torch.isfinite(out["box_deltas"]).all()


def test_canonical_retinanet_layout_and_towers() -> None:
    model = build_detector("retinanet", "resnet18", 4, input_size=128, canonical=True, norm="none")
    assert model.level_strides == (8, 16, 32, 64, 128) and model.kind.layout.num_anchors == 9
    assert len(model.head.cls_tower) == 8  # 4 x (conv, ReLU)
    assert model.head.cls_tower[0].out_channels == 256


def test_head_init() -> None:
    torch.manual_seed(0)
    model = build_detector("fssd", "mobilenet_v2", 20, input_size=128, head_width=96, head_depth=2)
    preds = model.head.preds[0]
    assert torch.allclose(preds["cls_logits"].bias, torch.full_like(preds["cls_logits"].bias, PRIOR_BIAS))
    assert torch.count_nonzero(preds["box_deltas"].bias) == 0
    assert abs(preds["box_deltas"].weight.std().item() - 0.01) < 0.002
    assert len(model.head.towers[0]) == 2
    with torch.no_grad():
        p = model.eval()(torch.rand(1, 3, 128, 128))["cls_logits"].sigmoid()
    assert (p - 0.01).abs().max() < 0.01  # everything starts near the prior


def test_config_rebuild_and_input_size_follow() -> None:
    model = build_detector("retinanet", "mobilenet_v2", 3, input_size=96, head_depth=0, **TINY)
    clone = build_detector(**model.config)
    assert clone.config == model.config
    clone.load_state_dict(model.state_dict(), strict=True)
    assert not any("anchor" in k or "prior" in k for k in model.state_dict())  # rebuilt, not stored
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 64, 128))  # another input size: anchors follow
    assert model.priors().num == 6 * (8 * 16 + 4 * 8 + 2 * 4 + 1 * 2)
    assert model.input_hw == (64, 128)


def test_invalid_options() -> None:
    with pytest.raises(ValueError):
        build_detector("rfbnet", "resnet18", 3)
    with pytest.raises(ValueError):
        build_detector("fssd", "resnet18", 3, canonical=True)
    with pytest.raises(ValueError):
        build_detector("yolo", "resnet18", 3)


@pytest.mark.parametrize("name", ["fssd", "fcos"])
def test_channels_last_matches(name: str) -> None:
    torch.manual_seed(0)
    ref = build_detector(name, "resnet18", 3, input_size=96, **TINY).eval()
    cl = build_detector(name, "resnet18", 3, input_size=96, channels_last=True, **TINY).eval()
    cl.load_state_dict(ref.state_dict())
    assert cl.head.preds[0]["cls_logits"].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        a, b = ref(x), cl(x)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4), k


@pytest.mark.parametrize("name", ["retinanet", "fcos"])
def test_predict_format(name: str) -> None:
    torch.manual_seed(0)
    model = build_detector(name, "mobilenet_v2", 4, input_size=128, **TINY).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 128, 128))
        out["cls_logits"] += torch.randn_like(out["cls_logits"]) * 3  # spread the scores
    dets = model.predict(out, score_thresh=0.05, max_det=50, pre_nms_topk=400)
    assert len(dets) == 2
    for d in dets:
        n = d["boxes"].shape[0]
        assert 0 < n <= 50 and d["scores"].shape == (n,) and d["labels"].dtype == torch.long
        assert (d["scores"] > 0.05).all() and torch.all(d["scores"][1:] <= d["scores"][:-1])
        assert (d["boxes"] >= 0).all() and (d["boxes"] <= 128).all()
        assert d["labels"].min() >= 0 and d["labels"].max() < 4

    scores, boxes = model.dense_predictions(out)  # the one dense decoding: [B, A, C], [B, A, 4]
    a = model.priors().num
    assert scores.shape == (2, a, 4) and boxes.shape == (2, a, 4)
    cands = model.candidates(out, score_thresh=0.05, pre_nms_topk=400)  # predict before its NMS
    no_nms = model.predict(out, score_thresh=0.05, nms_iou=1.01, max_det=400, pre_nms_topk=400)
    for c, d, kept in zip(cands, no_nms, dets):
        assert all(torch.equal(c[k], d[k]) for k in c) and len(c["scores"]) >= len(kept["scores"])


def _train_losses(name: str, backbone: str, strategy: str, steps: int = 5, **kw) -> list[float]:
    torch.manual_seed(0)
    model = build_detector(name, backbone, 3, input_size=96, **TINY, **kw)
    img = torch.rand(1, 3, 96, 96)
    gt_boxes = torch.tensor([[[15.0, 22, 68, 82], [45, 8, 90, 45], [0, 0, 0, 0]]])
    gt_labels = torch.tensor([[0, 2, -1]])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(steps):
        out = model.loss(model(img), gt_boxes, gt_labels, strategy)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
        assert out["num_cls_pos"] > 0 and out["num_reg_pos"] > 0
        assert out["assignment"] is not None and 0 <= out["disagree"] <= 1
    return losses


TRAIN = [
    ("fssd", "mobilenet_v2", {}),
    ("retinanet", "mobilenet_v2", {}),
    ("rfbnet", "vgg16", {}),
    ("fcos", "mobilenet_v2", {}),
    ("retinanet", "mobilenet_v2", {"canonical": True}),
]


@pytest.mark.parametrize("combo", TRAIN, ids=_ids)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sgd_steps_reduce_loss(combo: tuple, strategy: str) -> None:
    name, backbone, kw = combo
    # ATSS takes every anchor of 9 locations per level as candidates (6 anchors per location here): several
    # times more regression samples per GT, so its loss, mostly regression, falls more slowly per step.
    # Task-aligned targets move with the predictions (t = s·u⁶, normalised per GT): its loss can stay flat for
    # the first 5 steps (seen on an Intel Xeon: 2.196 -> 2.134 for FSSD), and falls by 15 % after 8.
    # The authors' later rule moves its counts too (k from the predictions). On FCOS points (not in the authors'
    # code) its loss is not monotone over a few steps: it rose from 1.69 to 1.87 by step 12 while k grew, on an
    # AMD EPYC; there the test asks only for finite losses that go below the first one.
    steps = {"atss": 7, "task_aligned": 8, "mutual_guidance_dynamic": 8}.get(strategy, 5)
    losses = _train_losses(name, backbone, strategy, steps=steps, **kw)
    if strategy == "mutual_guidance_dynamic" and name == "fcos":
        assert all(math.isfinite(v) for v in losses) and min(losses) < losses[0], losses
        return
    assert losses[-1] < losses[0] * 0.97, losses


@pytest.mark.parametrize("backbone", ["resnet18", "vgg16"])
@pytest.mark.parametrize("name", ["fssd", "fcos"])
def test_sgd_steps_reduce_loss_other_backbones(name: str, backbone: str) -> None:
    losses = _train_losses(name, backbone, "mutual_guidance")
    assert losses[-1] < losses[0] * 0.97, losses


def test_empty_image_loss_is_finite() -> None:
    model = build_detector("fssd", "mobilenet_v2", 3, input_size=64, **TINY)
    out = model(torch.rand(2, 3, 64, 64))
    for g in (0, 1):  # no GT column at all, or one padding column
        gt_boxes, gt_labels = torch.zeros(2, g, 4), torch.full((2, g), -1)
        loss = model.loss(out, gt_boxes, gt_labels, "mutual_guidance")
        assert torch.isfinite(loss["loss"]) and loss["num_cls_pos"] == 0
    loss["loss"].backward()


def test_batchnorm_of_one_value_per_channel_uses_running_statistics():
    """A batch of one image at 64 px reaches a 1 x 1 level: BatchNorm used to fail with "Expected more than 1 value
    per channel" (issue 22, item 14); it now normalises with the running statistics and leaves them unchanged."""
    from mgdet.models.layers import BatchNorm2d

    torch.manual_seed(0)
    bn = BatchNorm2d(5)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    ref = torch.nn.BatchNorm2d(5)
    ref.load_state_dict(bn.state_dict())  # same keys as torch's (and torchvision's) BatchNorm2d
    x = torch.randn(1, 5, 1, 1)
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    bn.train()
    y = bn(x)
    expect = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + bn.eps)
    expect = expect * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    torch.testing.assert_close(y, expect)
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    x2 = torch.randn(2, 5, 3, 3)  # two values or more: exactly torch's BatchNorm2d, statistics updated
    ref.train()
    torch.testing.assert_close(bn(x2), ref(x2))
    torch.testing.assert_close(bn.running_mean, ref.running_mean)


def test_one_image_batches_train_at_64_px(tiny_dataset, tmp_path):
    from conftest import tiny_config

    from mgdet.engine.config import from_dict
    from mgdet.engine.train import train

    cfg = from_dict(tiny_config(tiny_dataset, tmp_path / "run", epochs=1, batch_size=1, max_iters=2, eval_interval=0))
    result = train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
    assert result.history[-1]["iter"] == 2 and result.history[-1]["skipped_steps"] == 0

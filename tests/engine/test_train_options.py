"""Training options: lr schedule, weight-decay groups, frozen stages, EMA, channels_last, grad clipping."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_config

from mgdet.engine.builders import freeze_backbone_stages
from mgdet.engine.checkpoint import load_checkpoint, load_detector
from mgdet.engine.config import TrainConfig, from_dict
from mgdet.engine.train import lr_at, param_groups, train
from mgdet.models import build_detector


def test_lr_schedule_hand_values():
    cfg = TrainConfig(lr=0.01, warmup_iters=500, min_lr=1e-6)
    assert lr_at(0, 10_000, 100, cfg) == pytest.approx(1e-5)  # 0.001 * lr
    assert lr_at(250, 10_000, 100, cfg) == pytest.approx(0.01 * (0.001 + 0.999 * 0.5))
    assert lr_at(500, 10_000, 100, cfg) == pytest.approx(0.01)  # warm-up done, cosine starts at lr
    mid = 500 + (10_000 - 500) // 2
    assert lr_at(mid, 10_000, 100, cfg) == pytest.approx(1e-6 + 0.5 * (0.01 - 1e-6), rel=1e-3)
    assert lr_at(10_000, 10_000, 100, cfg) == pytest.approx(1e-6)
    step = TrainConfig(lr=0.1, warmup_iters=0, schedule="step", step_epochs=[2, 4])
    assert [lr_at(e * 10, 100, 10, step) for e in (0, 1, 2, 3, 4)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    assert math.isfinite(lr_at(0, 1, 1, TrainConfig()))


def test_no_weight_decay_on_bn_and_bias():
    det = build_detector("fssd", "mobilenet_v2", 3, 64, neck_width=16, head_width=16)
    decay, no_decay = param_groups(det, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    names = {id(p): n for n, p in det.named_parameters()}
    assert any(names[id(p)].endswith("bias") for p in no_decay["params"])


def test_frozen_stages():
    det = build_detector("retinanet", "resnet18", 3, 64, neck_width=16, head_width=16)
    frozen = freeze_backbone_stages(det, "resnet18", 2)
    assert "conv1" in frozen and "layer1" in frozen and "layer2" not in frozen
    assert not det.backbone.conv1.weight.requires_grad and det.backbone.layer2[0].conv1.weight.requires_grad


def test_ema_channels_last_grad_clip(tiny_dataset, tmp_path):
    cfg = from_dict(tiny_config(tiny_dataset, tmp_path / "r", epochs=1, max_iters=3, eval_interval=0, ema=True,
                                channels_last=True, grad_clip=1.0, ema_decay=0.5))  # fmt: skip
    cfg.model.frozen_stages = 2
    train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
    state = load_checkpoint(tmp_path / "r" / "last.pth")
    assert state["ema"] is not None and state["ema_updates"] == 3
    diff = [k for k in state["model"] if state["model"][k].is_floating_point()
            and not torch.equal(state["model"][k], state["ema"][k])]  # fmt: skip
    assert diff  # EMA weights differ from the raw weights
    det, _ = load_detector(tmp_path / "r" / "last.pth")
    k = diff[0]
    assert torch.equal(det.state_dict()[k], state["ema"][k])  # EMA weights are used for inference
    raw, _ = load_detector(tmp_path / "r" / "last.pth", use_ema=False)
    assert torch.equal(raw.state_dict()[k], state["model"][k])


def test_backbone_lr_mult_groups():
    det = build_detector("fssd", "mobilenet_v2", 3, 64, neck_width=16, head_width=16)
    groups = param_groups(det, 5e-4, backbone_lr_mult=0.1)
    names = {id(p): n for n, p in det.named_parameters()}
    assert len(groups) == 4 and sum(len(g["params"]) for g in groups) == len(names)
    for g in groups:
        in_backbone = {names[id(p)].startswith("backbone.") for p in g["params"]}
        assert in_backbone == {g["lr_mult"] == 0.1}
        assert all((p.ndim > 1) == (g["weight_decay"] == 5e-4) for p in g["params"])
    assert all(g["lr_mult"] == 1.0 for g in param_groups(det, 5e-4))  # the default keeps two groups


def test_static_warmup_then_strategy_and_backbone_lr(tiny_dataset, tmp_path, monkeypatch):
    from mgdet.models.detector import Detector

    seen, before = [], {}
    original = Detector.loss

    def spy(self, outputs, gt_boxes, gt_labels, strategy, params=None):
        seen.append(strategy)
        if not before:  # the weights before the first optimiser step
            before.update({k: v.clone() for k, v in self.state_dict().items()})
        return original(self, outputs, gt_boxes, gt_labels, strategy, params)

    monkeypatch.setattr(Detector, "loss", spy)
    cfg = from_dict(tiny_config(tiny_dataset, tmp_path / "r", epochs=1, max_iters=3, eval_interval=0,
                                static_warmup_iters=2, backbone_lr_mult=0.0))  # fmt: skip
    cfg.data.augment = "flip"
    train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
    assert seen == ["iou", "iou", "mutual_guidance"]
    state = load_checkpoint(tmp_path / "r" / "last.pth")["model"]
    # lr x 0 on the backbone: its weights never move (BN running statistics do, they are not parameters)
    weights = [k for k in before if k.endswith("weight") and before[k].ndim > 1]
    assert all(torch.equal(state[k], before[k]) for k in weights if k.startswith("backbone."))
    assert not torch.equal(state["head.preds.0.cls_logits.weight"], before["head.preds.0.cls_logits.weight"])


def test_mg_ramp_and_metric_reach_the_assignment_and_the_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    """train.mg_ramp (issue 25): lambda ramps 0 -> 1 over the first half of the steps; train.mg_metric is passed
    through; both are stored with the detector (a checkpoint reloads the same knobs)."""
    from mgdet.models.detector import Detector

    seen = []
    original = Detector.loss

    def spy(self, outputs, gt_boxes, gt_labels, strategy, params=None):
        seen.append((params.mg_lambda, params.mg_metric))
        return original(self, outputs, gt_boxes, gt_labels, strategy, params)

    monkeypatch.setattr(Detector, "loss", spy)
    cfg = from_dict(tiny_config(tiny_dataset, tmp_path / "r", epochs=1, max_iters=4, eval_interval=0, mg_ramp=0.5,
                                mg_metric="aligned"))  # fmt: skip
    cfg.data.augment = "flip"
    train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
    assert seen == [(0.0, "aligned"), (0.5, "aligned"), (1.0, "aligned"), (1.0, "aligned")]
    det = load_detector(tmp_path / "r" / "last.pth")[0]
    assert det.assign_params.mg_ramp == 0.5 and det.assign_params.mg_metric == "aligned"


@pytest.mark.parametrize(
    ("strategy", "key", "value"), [("task_aligned", "tal_reg", "c2l"), ("mutual_guidance", "mg_reg", "cls")]
)
def test_regression_sample_variants_reach_the_assignment_and_the_checkpoint(tiny_dataset, tmp_path, monkeypatch,
                                                                            strategy, key, value):  # fmt: skip
    """train.tal_reg / train.mg_reg (issue 25's hybrids) are passed to the assignment and stored with the detector."""
    from mgdet.models.detector import Detector

    seen = []
    original = Detector.loss

    def spy(self, outputs, gt_boxes, gt_labels, strategy, params=None):
        seen.append((strategy, getattr(params, key)))
        return original(self, outputs, gt_boxes, gt_labels, strategy, params)

    monkeypatch.setattr(Detector, "loss", spy)
    cfg = from_dict(tiny_config(tiny_dataset, tmp_path / "r", epochs=1, max_iters=2, eval_interval=0,
                                strategy=strategy, **{key: value}))  # fmt: skip
    cfg.data.augment = "flip"
    train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
    assert seen == [(strategy, value)] * 2
    assert getattr(load_detector(tmp_path / "r" / "last.pth")[0].assign_params, key) == value


@pytest.mark.parametrize(
    ("key", "value"),
    [("mg_metric", "pu6"), ("mg_lambda", 1.5), ("mg_ramp", -0.1), ("tal_reg", "mg"), ("mg_reg", "tal")],
)
def test_bad_variant_keys_are_config_errors(tiny_dataset, tmp_path, key, value):
    from mgdet.engine.config import ConfigError

    with pytest.raises(ConfigError, match=f"train.{key}"):
        from_dict(tiny_config(tiny_dataset, tmp_path / "r", **{key: value}))


def test_authors_loss_trains_and_is_stored(tiny_dataset, tmp_path):
    """loss.style: authors (issue 25): the authors' later rule with their loss trains (finite losses) and the
    checkpoint keeps the style; FCOS refuses it in the config."""
    from mgdet.engine.config import ConfigError

    data = tiny_config(tiny_dataset, tmp_path / "r", epochs=1, max_iters=2, eval_interval=0,
                       strategy="mutual_guidance_dynamic")  # fmt: skip
    data["loss"] = {"style": "authors"}
    cfg = from_dict(data)
    cfg.data.augment = "flip"
    result = train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
    assert all(math.isfinite(float(h["loss"])) for h in result.history)
    det = load_detector(tmp_path / "r" / "last.pth")[0]
    assert det.loss_cfg.style == "authors"
    data["model"]["name"] = "fcos"
    with pytest.raises(ConfigError, match="loss.style"):
        from_dict(data)
    data["model"]["name"], data["loss"] = "retinanet", {"style": "yolo"}
    with pytest.raises(ConfigError, match="loss.style"):
        from_dict(data)

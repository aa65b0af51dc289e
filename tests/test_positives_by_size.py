"""scripts/positives_by_size.py: per-size sums of positives checked by hand on a tiny case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_script


def _module():
    return load_script("positives_by_size")


def test_size_bins_follow_coco_area_thresholds():
    mod = _module()
    boxes = np.array([[0, 0, 31, 32], [0, 0, 32, 32], [0, 0, 96, 95], [0, 0, 96, 96]], np.float32)
    assert mod.size_bins(boxes).tolist() == [0, 1, 1, 2]


def test_image_sums_by_hand():
    mod = _module()
    gt = torch.tensor([[0.0, 0, 10, 10], [0, 0, 100, 100]])  # small, large
    pred = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 100, 50], [5, 5, 6, 6]])  # IoU 1, .5 | .5 | -
    cls_gt = torch.tensor([0, 0, 1, -1])
    reg_gt = torch.tensor([0, -1, 1, 1])
    scores = torch.tensor([[0.8, 0.0], [0.4, 0.0], [0.0, 0.3], [0.1, 0.1]])  # [A, G]
    levels = torch.tensor([0, 1, 2, 3])
    s = mod.image_sums(cls_gt, reg_gt, mod.size_bins(gt.numpy()), gt, pred, scores, levels)
    assert s["gts"].tolist() == [1, 0, 1]
    assert s["cls_pos"].tolist() == [2, 0, 1]
    assert s["reg_pos"].tolist() == [1, 0, 2]
    assert s["at_most_one"].tolist() == [0, 0, 1]
    assert s["iou_sum"] == pytest.approx([1.5, 0, 0.5])
    assert s["score_sum"] == pytest.approx([1.2, 0, 0.3])
    assert s["level_sum"].tolist() == [1, 0, 2]
    rows = mod.summary_rows("ckpt", {"mg": np.stack([s[k] for k in mod.SUMS])})
    small = rows[0]
    assert (small["size"], small["cls_pos_per_gt"]) == ("small", 2)
    assert (small["iou_pos"], small["score_pos"]) == pytest.approx((0.75, 0.6))


def test_checkpoint_sums_pool_every_gt_of_the_images(tiny_checkpoint, tiny_dataset):
    from mgdet.data import EvalTransform
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.checkpoint import load_detector
    from mgdet.engine.config import from_dict

    mod = _module()
    totals = mod.checkpoint_sums(str(tiny_checkpoint), ["iou", "tal"], images=3, split="val")
    # independently: the first 3 val images with objects, their GT count and the static positives
    detector, cfg_dict = load_detector(str(tiny_checkpoint))
    cfg = from_dict(cfg_dict)
    dataset = build_dataset(cfg.data, train=False)
    tf = EvalTransform(cfg.data.input_size)
    gts = positives = images = 0
    for i in range(len(dataset)):
        img, t = dataset[i]
        x, boxes, labels = tf(img, np.asarray(t["boxes"], np.float32).reshape(-1, 4), np.asarray(t["labels"]))
        if len(labels) == 0:
            continue
        out = detector.eval()(x[None].float())
        a = detector.assign(out, torch.as_tensor(boxes)[None], torch.as_tensor(labels).long()[None], "iou")
        gts, positives, images = gts + len(labels), positives + int((a.cls_gt >= 0).sum()), images + 1
        if images == 3:
            break
    for rule in ("iou", "tal"):
        assert totals[rule][mod.SUMS.index("gts")].sum() == gts
    assert totals["iou"][mod.SUMS.index("cls_pos")].sum() == positives


def test_a_rule_ignores_the_variant_the_checkpoint_was_trained_with(tiny_checkpoint, tmp_path, monkeypatch):
    """A checkpoint trained with mg_metric: aligned: the "mg" rule is still the paper's rule (its labels differ
    from "mg_aligned" on the same predictions)."""
    from mgdet.engine import checkpoint

    mod = _module()
    original = checkpoint.load_detector

    def aligned(path):
        det, cfg = original(path)
        det.assign_params = mod.replace(det.assign_params, mg_metric="aligned")
        return det, cfg

    monkeypatch.setattr(mod, "load_detector", aligned)
    calls = []
    monkeypatch.setattr(mod, "image_sums", lambda *a: calls.append(a[0].clone()) or {k: np.zeros(3) for k in mod.SUMS})
    mod.checkpoint_sums(str(tiny_checkpoint), ["mg", "mg_aligned"], images=3, split="val")
    paper, variant = calls[0::2], calls[1::2]
    assert any(not torch.equal(p, v) for p, v in zip(paper, variant))


def test_a_missing_checkpoint_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    mod = _module()
    monkeypatch.setattr("sys.argv", ["positives_by_size.py", str(tmp_path / "none.pth")])
    with pytest.raises(SystemExit, match="none.pth: checkpoint not found"):
        mod.main()

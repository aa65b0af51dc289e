"""Tests for mgdet.evaluation: COCO metrics, VOC07 metrics, ignore semantics, misalignment rate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from faster_coco_eval import COCO, COCOeval_faster

from mgdet.evaluation import EvalResult, coco_gt_dict, evaluate, misalignment_rate, pairwise_iou
from mgdet.utils.table import format_table

NAMES = ["cat", "dog", "bird"]


def gt(image_id: int, boxes, labels, ignore=None, size: int = 600) -> dict:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    ignore = np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore, bool)
    return dict(
        image_id=image_id,
        boxes=boxes,
        labels=np.asarray(labels, np.int64),
        ignore=ignore,
        height=size,
        width=size,
    )


def det(image_id: int, boxes, scores, labels) -> dict:
    return dict(
        image_id=image_id,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        scores=np.asarray(scores, np.float32),
        labels=np.asarray(labels, np.int64),
    )


# --------------------------------------------------------------------------------------------------
# perfect and shifted detections
# --------------------------------------------------------------------------------------------------
def test_perfect_detections_score_one_everywhere():
    gts = [
        gt(1, [[10, 10, 30, 30], [100, 100, 160, 160], [200, 50, 400, 300]], [0, 1, 0]),  # small, medium, large
        gt(2, [[0, 0, 50, 40], [300, 300, 500, 520]], [2, 1]),
        gt(3, np.zeros((0, 4)), []),
    ]
    dets = [det(g["image_id"], g["boxes"], np.linspace(0.9, 0.5, len(g["labels"])), g["labels"]) for g in gts]
    r = evaluate(gts, dets, NAMES)
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
        assert r.metrics[key] == pytest.approx(1.0), key
    for key in ("voc07_map50", "voc07_ap50", "voc07_ap75", "voc07_ap_50_95"):
        assert r.metrics[key] == pytest.approx(1.0), key
    assert [c["num_gt"] for c in r.per_class] == [2, 2, 1]
    assert all(c["AP"] == pytest.approx(1.0) and c["AP50"] == pytest.approx(1.0) for c in r.per_class)
    assert r.precision.shape == (10, 101, 3)
    assert np.allclose(r.precision, 1.0)


def test_shifted_box_iou_two_thirds():
    # GT [0,0,100,100], det shifted 20 px right: inter 80*100 = 8000, union 2*10000 - 8000 = 12000,
    # IoU = 2/3. It matches at IoU thresholds .50 .55 .60 .65 (4 of 10) and fails at .70 ... .95.
    assert pairwise_iou(np.array([[0, 0, 100, 100]]), np.array([[20, 0, 120, 100]]))[0, 0] == pytest.approx(2 / 3)
    gts = [gt(1, [[0, 0, 100, 100]], [0])]
    dets = [det(1, [[20, 0, 120, 100]], [0.9], [0])]
    r = evaluate(gts, dets, NAMES)
    assert r.metrics["AP50"] == pytest.approx(1.0)
    assert r.metrics["AP75"] == pytest.approx(0.0)
    assert r.metrics["AP"] == pytest.approx(4 / 10)  # AP 1 at 4 thresholds, 0 at the other 6
    assert r.metrics["voc07_map50"] == pytest.approx(1.0)
    assert r.metrics["voc07_ap50"] == pytest.approx(1.0)
    assert r.metrics["voc07_ap75"] == pytest.approx(0.0)
    assert r.metrics["voc07_ap_50_95"] == pytest.approx(4 / 10)
    # classes without GT ("dog", "bird") are undefined, not zero
    assert math.isnan(r.per_class[1]["AP"]) and math.isnan(r.per_class[2]["voc07_AP50"])


# --------------------------------------------------------------------------------------------------
# hand-computed two-class case
# --------------------------------------------------------------------------------------------------
def test_two_classes_fp_ranked_above_tp_hand_computed():
    # image 1: cat A1, dog B1; image 2: cat A2. All det IoUs are exactly 0 or 1.
    a1, b1, a2 = [0, 0, 50, 50], [100, 100, 180, 180], [10, 10, 90, 90]
    gts = [gt(1, [a1, b1], [0, 1]), gt(2, [a2], [0])]
    dets = [
        det(1, [a1, [200, 200, 250, 250], a1, b1], [0.9, 0.8, 0.95, 0.6], [0, 0, 1, 1]),
        det(2, [a2], [0.7], [0]),
    ]
    r = evaluate(gts, dets, NAMES)
    # cat (npos 2), by score: 0.9 TP (rec .5, prec 1), 0.8 FP (rec .5, prec .5), 0.7 TP (rec 1, prec 2/3).
    #   11-point: recall points 0,.1,...,.5 (6 points) -> max prec 1; .6,...,1.0 (5 points) -> 2/3.
    #   AP = (6 * 1 + 5 * 2/3) / 11 = (28/3) / 11 = 28/33 = 0.848484...
    # dog (npos 1): 0.95 is on the cat box A1 -> FP (rec 0, prec 0); 0.6 TP (rec 1, prec 1/2).
    #   every recall point -> 1/2, AP = 0.5
    # mAP = (28/33 + 1/2) / 2 = 89/132 = 0.674242...
    cat_ap, dog_ap = 28 / 33, 0.5
    assert r.per_class[0]["voc07_AP50"] == pytest.approx(cat_ap)
    assert r.per_class[1]["voc07_AP50"] == pytest.approx(dog_ap)
    assert r.metrics["voc07_map50"] == pytest.approx(89 / 132)
    # IoUs are 0 or 1, so every threshold gives the same value
    assert r.metrics["voc07_ap_50_95"] == pytest.approx(89 / 132)
    # COCO 101-point: cat precision 1 at recall .00..0.50 (51 points), 2/3 at .51..1.00 (50 points)
    coco_cat = (51 + 50 * 2 / 3) / 101
    assert r.per_class[0]["AP50"] == pytest.approx(coco_cat)
    assert r.per_class[1]["AP50"] == pytest.approx(0.5)
    assert r.metrics["AP50"] == pytest.approx((coco_cat + 0.5) / 2)
    assert r.metrics["AP"] == pytest.approx((coco_cat + 0.5) / 2)
    assert r.per_class[2]["num_gt"] == 0 and math.isnan(r.per_class[2]["AP"])


def test_voc_devkit_rule_max_iou_gt_already_taken_is_fp():
    # G1 [0,0,100,100], G2 [0,50,100,150]. Det a = G1 exactly (0.9). Det b [0,20,100,120] (0.8):
    #   IoU(b, G1) = 80*100 / (2*10000 - 8000) = 2/3, IoU(b, G2) = 70*100 / (20000 - 7000) = 7/13 = 0.538.
    # VOC devkit: b looks only at its max-IoU GT (G1), already taken -> FP:
    #   rec .5 prec 1, then rec .5 prec .5 -> 11-point AP50 = 6/11.
    # COCO: b takes the best still-free GT with IoU >= .5, i.e. G2 -> TP -> AP50 = 1.
    gts = [gt(1, [[0, 0, 100, 100], [0, 50, 100, 150]], [0, 0])]
    dets = [det(1, [[0, 0, 100, 100], [0, 20, 100, 120]], [0.9, 0.8], [0, 0])]
    r = evaluate(gts, dets, NAMES)
    assert r.metrics["voc07_map50"] == pytest.approx(6 / 11)
    assert r.metrics["AP50"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------------
# ignore / difficult
# --------------------------------------------------------------------------------------------------
def test_detections_on_ignored_gt_are_neither_tp_nor_fp():
    # one regular cat N and two difficult cats D1 (detected twice, above N) and D2 (missed).
    # The duplicate on D1 has IoU 99*99 / (20000 - 9801) = 0.961, so it falls on D1 at every threshold.
    n, d1, d2 = [0, 0, 100, 100], [200, 200, 300, 300], [400, 0, 500, 100]
    gts = [gt(1, [n, d1, d2], [0, 0, 0], ignore=[False, True, True])]
    dets = [det(1, [d1, [201, 201, 301, 301], n], [0.9, 0.8, 0.5], [0, 0, 0])]
    for mode in ("difficult", "crowd"):
        r = evaluate(gts, dets, NAMES, ignore_mode=mode)
        # if D1 counted as FP: AP50 would be 1/3; if difficult GT counted as positives: recall <= 2/3
        assert r.metrics["AP"] == pytest.approx(1.0), mode
        assert r.metrics["AP50"] == pytest.approx(1.0), mode
        assert r.metrics["AR100"] == pytest.approx(1.0), mode
        assert r.metrics["voc07_map50"] == pytest.approx(1.0), mode
        assert r.metrics["voc07_ap_50_95"] == pytest.approx(1.0), mode
        assert r.per_class[0]["num_gt"] == 1
    # control: the same boxes without the ignore flag are ordinary positives
    r = evaluate([gt(1, [n, d1, d2], [0, 0, 0])], dets, NAMES)
    assert r.metrics["AR100"] < 1.0 and r.metrics["voc07_map50"] < 1.0


def test_ignore_overlap_is_plain_iou_for_difficult_and_crowd_overlap_for_crowd():
    # a small det inside a difficult box: plain IoU 900/10000 = 0.09, crowd overlap (inter / det area) = 1.
    n, d1 = [0, 0, 100, 100], [200, 200, 300, 300]
    gts = [gt(1, [n, d1], [0, 0], ignore=[False, True])]
    dets = [det(1, [[200, 200, 230, 230], n], [0.9, 0.5], [0, 0])]
    # VOC rule / difficult mode: the small det is an FP ranked above the TP -> precision 1/2 at recall 1.
    r = evaluate(gts, dets, NAMES, ignore_mode="difficult")
    assert r.metrics["AP50"] == pytest.approx(0.5)
    assert r.metrics["voc07_map50"] == pytest.approx(0.5)
    # COCO crowd rule: the det lies inside the crowd region -> ignored.
    r = evaluate(gts, dets, NAMES, ignore_mode="crowd")
    assert r.metrics["AP50"] == pytest.approx(1.0)
    assert r.metrics["voc07_map50"] == pytest.approx(0.5)  # the VOC path always follows the devkit


def test_ignore_key_alone_is_not_honoured_by_faster_coco_eval():
    # Documents why coco_gt_dict sends ignored boxes as iscrowd=1: an "ignore" key is overwritten.
    gd = coco_gt_dict([gt(1, [[0, 0, 100, 100], [200, 200, 300, 300]], [0, 0], ignore=[False, True])], NAMES)
    assert [a["iscrowd"] for a in gd["annotations"]] == [0, 1]
    for a in gd["annotations"]:
        a["ignore"], a["iscrowd"] = a["iscrowd"], 0
    res = [dict(image_id=1, category_id=1, bbox=[200, 200, 100, 100], score=0.9)]
    res.append(dict(image_id=1, category_id=1, bbox=[0, 0, 100, 100], score=0.5))
    coco = COCO(gd, print_function=lambda *a, **k: None)
    ev = COCOeval_faster(coco, coco.loadRes(res), "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    assert ev.eval["precision"][0, :, 0, 0, -1].mean() == pytest.approx(1.0)  # both counted as positives
    assert ev.eval["recall"][0, 0, 0, -1] == pytest.approx(1.0)  # (2 of 2) -> ignore had no effect


# --------------------------------------------------------------------------------------------------
# empty inputs and missing classes
# --------------------------------------------------------------------------------------------------
def test_empty_images_missing_detections_and_classes_without_gt():
    box = [0, 0, 100, 100]
    gts = [gt(1, [box], [0]), gt(2, [box], [0]), gt(3, np.zeros((0, 4)), []), gt(4, np.zeros((0, 4)), [])]
    dets = [
        det(1, [box, box], [0.9, 0.3], [0, 1]),  # cat TP; a dog det, but dog has no GT anywhere
        det(3, [[10, 10, 60, 60]], [0.8], [0]),  # FP on an image without objects
        det(4, np.zeros((0, 4)), [], []),  # an explicit empty entry
    ]  # image 2: no detections at all
    r = evaluate(gts, dets, NAMES)
    # cat: 0.9 TP (rec .5, prec 1), 0.8 FP (rec .5, prec .5); recall never exceeds 1/2.
    #   VOC 11-point: points 0..0.5 -> 1, points .6..1 -> 0 => 6/11. COCO: 51 of 101 points -> 51/101.
    assert r.metrics["voc07_map50"] == pytest.approx(6 / 11)
    assert r.metrics["AP50"] == pytest.approx(51 / 101)
    assert r.metrics["AR100"] == pytest.approx(0.5)
    assert [c["num_gt"] for c in r.per_class] == [2, 0, 0]
    assert math.isnan(r.per_class[1]["AP"]) and math.isnan(r.per_class[2]["voc07_AP_50_95"])
    assert np.all(r.precision[:, :, 1:] == -1)

    none = evaluate(gts, [], NAMES)
    assert none.metrics["AP"] == 0.0 and none.metrics["voc07_map50"] == 0.0 and none.coco_results == []

    nothing = evaluate([], [], NAMES)
    assert all(math.isnan(v) for v in nothing.metrics.values())
    with pytest.raises(ValueError):
        evaluate([gt(1, [box], [0])], [det(99, [box], [0.5], [0])], NAMES)  # unknown image id


# --------------------------------------------------------------------------------------------------
# area buckets
# --------------------------------------------------------------------------------------------------
def test_area_buckets_use_original_pixel_area():
    small = [10, 10, 30, 30]  # 20*20 = 400 < 32^2
    medium = [100, 100, 150, 150]  # 50*50 = 2500 in [32^2, 96^2]
    large = [200, 200, 320, 320]  # 120*120 = 14400 > 96^2
    gts = [gt(1, [small, medium, large], [0, 0, 0], size=400)]
    dets = [det(1, [small, large], [0.9, 0.8], [0, 0])]  # the medium object is missed
    r = evaluate(gts, dets, NAMES)
    assert r.metrics["APs"] == pytest.approx(1.0)
    assert r.metrics["APm"] == pytest.approx(0.0)
    assert r.metrics["APl"] == pytest.approx(1.0)
    # all sizes: recall 2/3 with precision 1 -> recall points 0.00..0.66 (67 of 101)
    assert r.metrics["AP"] == pytest.approx(67 / 101)
    # no small GT at all -> APs undefined
    r2 = evaluate([gt(1, [large], [0])], [det(1, [large], [0.9], [0])], NAMES)
    assert math.isnan(r2.metrics["APs"]) and r2.metrics["APl"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------------
# outputs: coco results, json, table, tensors, silence
# --------------------------------------------------------------------------------------------------
def test_coco_results_json_round_trip(tmp_path):
    # areas: 90*90 = 8100 (medium), 40*140 = 5600 (medium), 30*30 = 900 (small): no large objects
    gts = [gt(1, [[0, 0, 90, 90], [50, 60, 90, 200]], [0, 2]), gt(2, [[10, 10, 40, 40]], [1])]
    dets = [
        det(1, [[5, 0, 90, 85], [50, 60, 90, 180], [300, 300, 340, 340]], [0.9, 0.7, 0.6], [0, 2, 0]),
        det(2, [[12, 10, 40, 42]], [0.8], [1]),
    ]
    r = evaluate(gts, dets, NAMES)
    assert r.coco_results[1] == dict(
        image_id=1, category_id=3, bbox=[50.0, 60.0, 40.0, 120.0], score=r.coco_results[1]["score"]
    )
    assert r.coco_results[1]["score"] == pytest.approx(0.7)
    path = tmp_path / "results.json"
    r.save_coco_results(path)
    coco_gt = COCO(coco_gt_dict(gts, NAMES), print_function=lambda *a, **k: None)
    ev = COCOeval_faster(coco_gt, coco_gt.loadRes(str(path)), "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(r.metrics["AP"])
    assert ev.stats[1] == pytest.approx(r.metrics["AP50"])
    assert ev.stats[2] == pytest.approx(r.metrics["AP75"])

    summary_path = tmp_path / "metrics.json"
    r.save_json(summary_path)
    loaded = json.loads(summary_path.read_text())
    assert loaded["metrics"]["AP"] == pytest.approx(r.metrics["AP"])
    assert loaded["metrics"]["APl"] is None  # NaN (no large objects) is written as null
    assert [c["name"] for c in loaded["per_class"]] == NAMES


def test_torch_inputs_and_table(capsys):
    gts = [
        dict(
            image_id=5,
            boxes=torch.tensor([[0.0, 0, 10, 10]]),
            labels=torch.tensor([1]),
            ignore=torch.tensor([False]),
            height=20,
            width=20,
        )
    ]
    dets = [
        dict(
            image_id=5,
            boxes=torch.tensor([[0.0, 0, 10, 10]]),
            scores=torch.tensor([0.5]),
            labels=torch.tensor([1]),
        )
    ]
    r = evaluate(gts, dets, NAMES)
    assert isinstance(r, EvalResult) and r.metrics["AP"] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""  # faster-coco-eval's progress printing is silenced
    rows = r.table()
    assert rows[0] == ["AP", r.metrics["AP"]]
    text = r.summary(per_class=True)
    assert "dog" in text and "mean" in text and "1.000" in text
    md = format_table([["a", 1.0, None], ["bb", float("nan"), 3]], ["x", "y", "z"], style="markdown")
    assert md.splitlines() == [
        "| x  |     y | z |",
        "|----|------:|--:|",
        "| a  | 1.000 | - |",
        "| bb |     - | 3 |",
    ]


# --------------------------------------------------------------------------------------------------
# misalignment
# --------------------------------------------------------------------------------------------------
def test_misalignment_rate_hand_made():
    g_cat1, g_cat2, g_dog = [0, 0, 100, 100], [300, 300, 400, 400], [0, 200, 100, 300]
    gts = [gt(1, [g_cat1, g_cat2, g_dog], [0, 0, 1])]
    bad_cat = [60, 0, 160, 100]  # IoU with g_cat1 = 40*100 / (20000 - 4000) = 0.25 < 0.5
    good_cat = [5, 0, 100, 100]  # IoU with g_cat1 = 0.95 >= 0.75
    bad_dog = [0, 260, 100, 360]  # IoU with g_dog = 40*100 / 16000 = 0.25
    good_dog = [0, 205, 100, 300]  # IoU with g_dog = 0.95
    after = [
        det(
            1,
            [bad_cat, g_cat2, bad_dog, [500, 500, 550, 550]],
            [0.9, 0.8, 0.7, 0.01],  # the last one is below score_thresh: not counted
            [0, 0, 1, 0],
        )
    ]
    before = [
        det(
            1,
            [bad_cat, good_cat, g_cat2, bad_dog, good_dog, good_dog],
            # good_cat (0.6) is a lower-scored, well-localized cat -> bad_cat is misaligned.
            # good_dog appears as a cat (wrong class) and as a dog scored ABOVE bad_dog -> not misaligned.
            [0.9, 0.6, 0.8, 0.7, 0.5, 0.75],
            [0, 0, 0, 1, 0, 1],
        )
    ]
    rate, count, total = misalignment_rate(gts, before, after, score_thresh=0.05)
    assert (count, total) == (1, 3)
    assert rate == pytest.approx(1 / 3)
    # bad_cat and good_cat overlap with IoU 40*100 / (9500 + 10000 - 4000) = 0.258 < 0.5:
    # requiring the better box to be one NMS(0.5) would have suppressed removes the case.
    assert misalignment_rate(gts, before, after, suppress_iou=0.5)[1] == 0
    assert misalignment_rate(gts, before, [], score_thresh=0.05) == (0.0, 0, 0)


# --------------------------------------------------------------------------------------------------
# randomized cross-checks
# --------------------------------------------------------------------------------------------------
def _random_set(seed: int, n_img: int = 12, n_det: int = 120, ignore_p: float = 0.2):
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for i in range(n_img):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 150, (n, 2))], 1)
        labels = rng.integers(0, 3, n)
        gts.append(gt(i, boxes, labels, ignore=rng.random(n) < ignore_p))
        pick = rng.integers(0, max(n, 1), n_det)
        base = boxes[pick] if n else np.tile([[0.0, 0, 40, 40]], (n_det, 1))
        d_labels = np.where(rng.random(n_det) < 0.8, labels[pick] if n else 0, rng.integers(0, 3, n_det))
        # rounded scores create ties, which both implementations must break the same (stable) way
        dets.append(det(i, base + rng.normal(0, 6, (n_det, 4)), np.round(rng.random(n_det), 2), d_labels))
    return gts, dets


def _devkit_reference(gts, dets, k: int, thr: float) -> float:
    """Plain-loop transcription of the VOC devkit rule (11-point AP) for class k at IoU threshold thr."""
    recs = {g["image_id"]: (g["boxes"][g["labels"] == k], g["ignore"][g["labels"] == k]) for g in gts}
    taken = {i: np.zeros(len(b), bool) for i, (b, _) in recs.items()}
    npos = sum(int((~ign).sum()) for _, ign in recs.values())
    items = [
        (float(s), d["image_id"], b)
        for d in dets
        for b, s, lab in zip(d["boxes"], d["scores"], d["labels"])
        if lab == k
    ]
    order = np.argsort([-s for s, _, _ in items], kind="mergesort")
    tp, fp = [], []
    for j in order:
        _, image_id, box = items[j]
        g_boxes, g_ign = recs[image_id]
        ov = pairwise_iou(np.asarray(box)[None], g_boxes)[0] if len(g_boxes) else np.zeros(0)
        t = f = 0
        if len(ov) and ov.max() > thr:
            m = int(ov.argmax())
            if not g_ign[m]:
                if taken[image_id][m]:
                    f = 1
                else:
                    t, taken[image_id][m] = 1, True
        else:
            f = 1
        tp.append(t)
        fp.append(f)
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    rec = ctp / npos
    prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    ap = 0.0
    for point in np.arange(0.0, 1.1, 0.1):
        ap += (prec[rec >= point].max() if (rec >= point).any() else 0.0) / 11
    return ap


@pytest.mark.parametrize("seed", [0, 1])
def test_voc_matches_plain_devkit_loop(seed):
    gts, dets = _random_set(seed)
    r = evaluate(gts, dets, NAMES)
    for k in range(3):
        ref = [_devkit_reference(gts, dets, k, t) for t in np.linspace(0.5, 0.95, 10)]
        assert r.per_class[k]["voc07_AP50"] == pytest.approx(ref[0], abs=1e-12)
        assert r.per_class[k]["voc07_AP_50_95"] == pytest.approx(np.mean(ref), abs=1e-12)


def test_plain_iou_override_equals_stock_cocoeval_without_ignored_boxes():
    # 120 detections per image (> maxDets 100): the override must keep the library's order and cut.
    gts, dets = _random_set(3, ignore_p=0.0)
    a = evaluate(gts, dets, NAMES, ignore_mode="difficult")
    b = evaluate(gts, dets, NAMES, ignore_mode="crowd")
    assert a.metrics == pytest.approx(b.metrics, nan_ok=True)
    assert np.array_equal(a.precision, b.precision)


def test_a_non_square_detector_evaluates(tiny_dataset):
    """EvalTransform used to take an int only, so a detector built for (H, W) failed at evaluation (issue 23)."""
    import torch

    from mgdet.data import EvalTransform
    from mgdet.data.validate import open_dataset
    from mgdet.engine.config import EvalConfig
    from mgdet.engine.inference import evaluate_model
    from mgdet.models import build_detector

    torch.manual_seed(0)
    det = build_detector("retinanet", "mobilenet_v2", 10, input_size=(64, 96), neck_width=16, head_width=16).eval()
    tf = EvalTransform((64, 96))
    image = np.zeros((48, 80, 3), np.uint8)
    tensor, boxes, _ = tf.apply(image, np.array([[8.0, 12, 40, 36]]), np.array([1]))
    assert tensor.shape == (3, 64, 96)
    assert np.allclose(boxes, [[8 * 96 / 80, 12 * 64 / 48, 40 * 96 / 80, 36 * 64 / 48]])
    val = open_dataset(tiny_dataset, "voc", "val")
    result = evaluate_model(det, val, EvalConfig(score_thresh=0.01), torch.device("cpu"), progress=False)
    assert 0.0 <= result.metrics["AP"] <= 1.0

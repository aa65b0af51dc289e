"""Figures (mgdet.viz, mgdet.cli.visualize): small deterministic cases."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from PIL import Image

from mgdet.anchors import generate_anchors, paper_layout
from mgdet.assign import IGNORED, NEGATIVE, Assignment, amplified_iou
from mgdet.boxes import box_iou, decode
from mgdet.evaluation import load_eval_json, save_eval_json
from mgdet.strategies import AssignParams
from mgdet.viz.amplification import PAPER_SCORES, PAPER_SIGMAS, plot_amplification, save_amplification
from mgdet.viz.assignment import (
    assignment_sets,
    assignment_table,
    overlap_summary,
    overlap_sums,
    plot_assignment,
    render_assignment,
    strategy_assignments,
    write_table,
)
from mgdet.viz.common import GREEN, GT_COLOUR, RED, YELLOW, save_figure
from mgdet.viz.curves import plot_pr_curves, plot_training_curves, read_history
from mgdet.viz.detections import plot_detections, run_detector


def assert_png(path: Path, min_side: int = 200, min_std: float = 5.0) -> None:
    """The file is a real, non-constant image of reasonable size."""
    assert path.is_file() and path.stat().st_size > 2000
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width > min_side and im.height > min_side
        arr = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert arr.std() > min_std
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 10


def patches_by_gid(ax) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in ax.patches:
        out.setdefault(p.get_gid(), []).append(p)
    return out


# ----------------------------------------------------------------------------------------- Fig. 3
def test_amplification_figure(tmp_path: Path) -> None:
    fig = plot_amplification()
    assert len(fig.axes) == len(PAPER_SIGMAS)
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == len(PAPER_SCORES)
        x, y = lines[0].get_data()  # p = 0: identity
        np.testing.assert_allclose(y, x, atol=1e-6)
        for lo, hi in zip(lines[:-1], lines[1:]):  # a higher score never amplifies less
            assert np.all(hi.get_ydata() >= lo.get_ydata() - 1e-6)
    assert save_amplification(tmp_path / "amp.svg").stat().st_size > 10_000  # vector output works too


# ------------------------------------------------------------------------------------- Fig. 2 / 4
def hand_assignments() -> tuple[Assignment, Assignment, Assignment]:
    """8 anchors, 2 GT; the expected colour sets are written next to each line."""
    static = Assignment(
        cls_gt=torch.tensor([[0, 0, IGNORED, NEGATIVE, 1, NEGATIVE, NEGATIVE, NEGATIVE]]),
        reg_gt=torch.tensor([[0, 0, NEGATIVE, NEGATIVE, 1, NEGATIVE, NEGATIVE, NEGATIVE]]),
    )
    l2c = Assignment(  # anchor 1 loses (red), anchor 2 gains (green), 0 and 4 shared; 7 moves GT: not drawn
        cls_gt=torch.tensor([[0, NEGATIVE, 0, NEGATIVE, 1, IGNORED, NEGATIVE, NEGATIVE]]),
        reg_gt=static.reg_gt.clone(),
    )
    c2l = Assignment(  # anchor 0 loses (red), anchors 3 and 6 gain (yellow), 1 and 4 shared
        cls_gt=static.cls_gt.clone(),
        reg_gt=torch.tensor([[NEGATIVE, 0, NEGATIVE, 0, 1, NEGATIVE, 1, NEGATIVE]]),
    )
    return static, l2c, c2l


EXPECTED_SETS = {
    "red_l2c": [1],
    "green_l2c": [2],
    "shared_cls": [0, 4],
    "red_c2l": [0],
    "yellow_c2l": [3, 6],
    "shared_reg": [1, 4],
}


def test_assignment_sets_hand_made() -> None:
    sets = assignment_sets(*hand_assignments())
    assert {k: v.tolist() for k, v in sets.items()} == EXPECTED_SETS
    assert all(v.dtype == torch.long for v in sets.values())


def test_assignment_sets_mutual_guidance_and_batch_index() -> None:
    static, l2c, c2l = hand_assignments()
    mg = Assignment(cls_gt=l2c.cls_gt, reg_gt=c2l.reg_gt)  # MG = L2C labels + C2L samples
    assert {k: v.tolist() for k, v in assignment_sets(static, mg, mg).items()} == EXPECTED_SETS
    empty = Assignment(torch.full((1, 8), NEGATIVE), torch.full((1, 8), NEGATIVE))
    batch = [
        Assignment(torch.cat([empty.cls_gt, a.cls_gt]), torch.cat([empty.reg_gt, a.reg_gt])) for a in (static, l2c, c2l)
    ]
    assert {k: v.tolist() for k, v in assignment_sets(*batch, image=1).items()} == EXPECTED_SETS
    assert all(v.numel() == 0 for v in assignment_sets(*batch, image=0).values())


def hand_anchors() -> torch.Tensor:
    xy = torch.arange(8, dtype=torch.float32)[:, None] * 25 + 10  # [8, 1]
    return torch.cat([xy, xy, xy + 60, xy + 80], dim=1)  # [8, 4] inside a 256 image


@pytest.mark.parametrize("show_shared", [False, True])
def test_assignment_figure_patches_match_sets(tmp_path: Path, show_shared: bool) -> None:
    sets = assignment_sets(*hand_assignments())
    anchors = hand_anchors()
    gt = torch.tensor([[20.0, 20.0, 100.0, 110.0], [110.0, 110.0, 190.0, 200.0]])
    image = torch.rand(3, 256, 256, generator=torch.Generator().manual_seed(0))
    fig = plot_assignment(image, gt, anchors, sets, title="hand-made", show_shared=show_shared)
    ax_cls, ax_reg = fig.axes[:2]
    for ax, drawn in ((ax_cls, {"red_l2c": RED, "green_l2c": GREEN}), (ax_reg, {"red_c2l": RED, "yellow_c2l": YELLOW})):
        by_gid = patches_by_gid(ax)
        shared = "shared_cls" if ax is ax_cls else "shared_reg"
        expected_gids = {"gt", *drawn} | ({shared} if show_shared else set())
        assert set(by_gid) == expected_gids
        assert len(by_gid["gt"]) == 2
        for p in by_gid["gt"]:
            assert p.get_edgecolor() == to_rgba(GT_COLOUR) and p.get_linestyle() == ":"
        for key, colour in drawn.items():
            patches = by_gid[key]
            assert len(patches) == len(EXPECTED_SETS[key])
            assert all(p.get_edgecolor() == to_rgba(colour) for p in patches)
            corners = sorted((p.get_x(), p.get_y()) for p in patches)  # each patch is one of the set's anchors
            assert corners == sorted(tuple(anchors[i, :2].tolist()) for i in EXPECTED_SETS[key])
    if not show_shared:
        assert_png(save_figure(fig, tmp_path / "assign.png"))


def test_assignment_figure_points_for_fcos() -> None:
    sets = assignment_sets(*hand_assignments())
    points = hand_anchors()[:, :2] + 30  # [8, 2]
    fig = plot_assignment(np.zeros((256, 256, 3), np.uint8), torch.zeros(0, 4), points, sets)
    by_gid = patches_by_gid(fig.axes[1])
    assert len(by_gid["yellow_c2l"]) == 2 and "gt" not in by_gid
    assert by_gid["yellow_c2l"][0].get_facecolor() == to_rgba(YELLOW)


def random_predictions(anchors: torch.Tensor, num_classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pred_boxes = decode(torch.randn(len(anchors), 4, generator=g) * 0.6, anchors)  # [A, 4]
    pred_scores = torch.rand(len(anchors), num_classes, generator=g)  # [A, C]
    return pred_boxes, pred_scores


def test_assignment_sets_and_table_from_assign(tmp_path: Path) -> None:
    anchors = generate_anchors(paper_layout(), 160)  # [A, 4]
    gt = torch.tensor([[20.0, 30.0, 100.0, 130.0], [80.0, 60.0, 150.0, 120.0]])
    labels = torch.tensor([0, 2])
    pred_boxes, pred_scores = random_predictions(anchors, 3)
    a = strategy_assignments(anchors, gt, labels, pred_boxes, pred_scores, AssignParams(sigma=2.0))
    sets = assignment_sets(a["iou"], a["localize_to_classify"], a["classify_to_localize"])
    s_cls, l_cls = a["iou"].cls_gt[0] >= 0, a["localize_to_classify"].cls_gt[0] >= 0
    s_reg, c_reg = a["iou"].reg_gt[0] >= 0, a["classify_to_localize"].reg_gt[0] >= 0
    assert torch.equal(sets["red_l2c"], (s_cls & ~l_cls).nonzero().flatten())
    assert torch.equal(sets["green_l2c"], (l_cls & ~s_cls).nonzero().flatten())
    assert torch.equal(sets["yellow_c2l"], (c_reg & ~s_reg).nonzero().flatten())
    assert len(sets["red_l2c"]) + len(sets["green_l2c"]) > 0  # random predictions do change labels

    rows = assignment_table(anchors, gt, labels, pred_boxes, pred_scores, a, sets, sigma=2.0, class_names="abc")
    involved = s_cls | l_cls | s_reg | c_reg
    assert sorted(r["anchor"] for r in rows) == involved.nonzero().flatten().tolist()
    iou_anchor = box_iou(gt, anchors)  # [G, A]
    iou_reg = box_iou(gt, pred_boxes)  # [G, A]
    for r in rows:
        g, i = r["gt"], r["anchor"]
        assert r["gt_class"] == "abc"[int(labels[g])]
        assert r["iou_anchor"] == pytest.approx(float(iou_anchor[g, i]), abs=1e-5)
        assert r["iou_regressed"] == pytest.approx(float(iou_reg[g, i]), abs=1e-5)
        assert r["score"] == pytest.approx(float(pred_scores[i, labels[g]]))
        expected = amplified_iou(torch.tensor(r["iou_anchor"]), torch.tensor(r["score"]), 2.0)
        assert r["iou_amplified"] == pytest.approx(float(expected), abs=1e-5)
    csv_path, md_path = write_table(rows, tmp_path / "table.csv")
    with csv_path.open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert md_path.read_text().count("\n") == len(rows) + 2


@pytest.fixture(scope="module")
def tiny_detector() -> torch.nn.Module:
    from mgdet.models import build_detector

    torch.manual_seed(0)
    return build_detector("fssd", "resnet18", num_classes=3, input_size=96, neck_width=32).eval()


def test_overlap_of_l2c_and_c2l_with_static_hand_made() -> None:
    # one GT [0,0,10,10]; anchors with IoU 1, .8, .5 (static positives, Np = 3) and .3 (candidate only)
    anchors = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 10, 5], [0, 0, 10, 3]], dtype=torch.float)
    gt, lab = torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([1])
    pred = anchors.clone()
    pred[2] = torch.tensor([0.0, 0, 10, 2])  # anchor 2 regresses badly (IoU .2) ...
    pred[3] = gt[0]  # ... anchor 3 perfectly: L2C positives {0, 1, 3}
    scores = torch.zeros(4, 2)
    scores[:, 1] = torch.tensor([0.5, 0.2, 0.0, 1.0])  # C2L: .3^0.5 = .548 > .5^1 -> regression {0, 1, 3}
    a = strategy_assignments(anchors, gt, lab, pred, scores)
    s = overlap_summary([overlap_sums(a, gt, lab, pred, scores)] * 2)  # pooling identical images: same rates
    assert s["static_positives"] == 6
    assert math.isclose(s["l2c_kept"], 2 / 3) and math.isclose(s["c2l_kept"], 2 / 3)
    assert math.isclose(s["iou_reg_static"], (1 + 0.8 + 0.2) / 3, rel_tol=1e-6)
    assert math.isclose(s["iou_reg_l2c"], (1 + 0.8 + 1) / 3, rel_tol=1e-6)
    assert math.isclose(s["score_static"], 0.7 / 3, rel_tol=1e-6)
    assert math.isclose(s["score_c2l"], 1.7 / 3, rel_tol=1e-6)
    assert math.isnan(overlap_summary([])["l2c_kept"])  # no images: no rate


def test_render_assignment_with_tiny_detector(tmp_path: Path, tiny_detector: torch.nn.Module) -> None:
    image = torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(1))
    gt = torch.tensor([[10.0, 12.0, 60.0, 70.0], [40.0, 30.0, 90.0, 80.0]])
    res = render_assignment(tiny_detector, image, gt, torch.tensor([0, 2]), tmp_path / "a", class_names="xyz")
    assert_png(res["png"])
    assert res["csv"].is_file() and res["md"].is_file()
    assert len(res["rows"]) == len(torch.unique(torch.cat(list(res["sets"].values()))))
    assert len(res["sets"]["shared_cls"]) >= 2  # every GT keeps at least its best anchor at initialization


# ------------------------------------------------------------------------------------------ Fig. 5
def test_detections_figure(tmp_path: Path, tiny_detector: torch.nn.Module) -> None:
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    gt = {"boxes": np.array([[10, 10, 60, 80], [70, 20, 150, 100]], np.float32), "labels": np.array([0, 2])}
    det_a = {
        "boxes": torch.tensor([[12.0, 8.0, 58.0, 85.0]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([0]),
    }
    det_b = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    fig = plot_detections(image, gt, [det_a, det_b], ("static IoU", "Mutual Guidance"), ["cat", "dog", "cow"])
    assert len(fig.axes) == 3
    assert [len(ax.patches) for ax in fig.axes] == [2, 1, 0]
    assert {t.get_text() for t in fig.axes[0].texts} == {"cat", "cow"}
    assert fig.axes[1].texts[0].get_text() == "cat 0.90"
    assert_png(save_figure(fig, tmp_path / "det.png"))

    out = run_detector(tiny_detector, torch.rand(3, 96, 96), score_thresh=0.0)
    assert set(out) == {"boxes", "scores", "labels"} and out["boxes"].shape[-1] == 4
    with pytest.raises(ValueError, match="titles"):
        plot_detections(image, gt, [det_a], ("a", "b"))


# ---------------------------------------------------------------------------------------- curves
HISTORY_COLUMNS = (
    "epoch,iter,lr,loss,loss_cls,loss_reg,pos_cls_per_gt,pos_reg_per_gt,ign_per_gt,disagree,epoch_time_s,"
    "AP,AP50,AP75,APs,APm,APl,misalign"
)


def write_history(path: Path, epochs: int = 6) -> None:
    lines = [HISTORY_COLUMNS]
    for e in range(1, epochs + 1):
        base = f"{e},{e * 10},{0.01 * 0.7**e},{2 / e},{1.2 / e},{0.8 / e},{5 + e / 10},{5 - e / 10},3.1,{0.02 * e},1.5"
        ev = f",{0.1 * e},{0.2 * e},{0.05 * e},,,,{0.3 / e}" if e % 2 == 0 else ",,,,,,,"
        lines.append(base + ev)
    path.write_text("\n".join(lines) + "\n")


def test_training_curves(tmp_path: Path) -> None:
    write_history(tmp_path / "history.csv")
    h = read_history(tmp_path / "history.csv")
    assert len(h["epoch"]) == 6 and np.isnan(h["AP"][0]) and h["AP"][1] == pytest.approx(0.2)
    assert np.isnan(h["APs"]).all()
    fig = plot_training_curves(h, title="run")
    assert len(fig.axes) == 6
    ap_axis = fig.axes[2]
    assert [len(line.get_xdata()) for line in ap_axis.get_lines()] == [3, 3, 3]  # evaluated epochs only
    # the PNG itself is checked in test_cli_amplification_and_curves
    del h["misalign"]  # a missing column is reported, not an error
    fig = plot_training_curves(h)
    assert any(t.get_text() == "no data" for t in fig.axes[5].texts)


def test_pr_curves() -> None:
    recall = np.linspace(0, 1, 101)
    precision = np.empty((10, 101, 3))
    precision[:] = np.clip(1 - recall[None, :, None] ** 2 * np.array([0.5, 1.0, 2.0]), 0, 1)
    precision[:, :, 1] = -1  # class without ground truth: not drawn
    fig = plot_pr_curves(precision, ["a", "b", "c"])
    assert len(fig.axes) == 2
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["a", "c", "mean"]
    with pytest.raises(ValueError, match="IoU"):
        plot_pr_curves(precision, ["a", "b", "c"], ious=(0.42,))


def test_eval_json_round_trip(tmp_path: Path) -> None:
    from mgdet.evaluation import evaluate

    gts = [dict(image_id=1, boxes=[[10, 10, 50, 50], [60, 60, 90, 95]], labels=[0, 1], height=100, width=100)]
    dets = [dict(image_id=1, boxes=[[11, 10, 50, 52], [0, 0, 20, 20]], scores=[0.9, 0.4], labels=[0, 1])]
    result = evaluate(gts, dets, ["a", "b"])
    data = load_eval_json(save_eval_json(result, tmp_path / "eval.json"))
    np.testing.assert_allclose(data["precision"], result.precision)
    assert data["class_names"] == ["a", "b"]
    result.save_json(tmp_path / "plain.json")  # EvalResult's own json has no precision array
    assert load_eval_json(tmp_path / "plain.json").get("precision") is None


# -------------------------------------------------------------------------------------------- CLI
def cli(argv: list[str]) -> int:
    from mgdet.cli.visualize import register

    parser = argparse.ArgumentParser(prog="mgdet")
    register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def test_cli_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    from mgdet.cli.visualize import register

    parser = argparse.ArgumentParser(prog="mgdet")
    visualize = register(parser.add_subparsers(dest="verb"))
    sub = next(a for a in visualize._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"amplification", "assignment", "detections", "curves"}
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"{name}: {action.dest} has no help"
    assert cli(["visualize"]) == 0
    assert "FIGURE" in capsys.readouterr().out


def test_cli_amplification_and_curves(tmp_path: Path) -> None:
    assert cli(["visualize", "amplification", "--out", str(tmp_path / "amp.png")]) == 0
    assert_png(tmp_path / "amp.png")
    run = tmp_path / "run"
    run.mkdir()
    write_history(run / "history.csv")
    from mgdet.evaluation import evaluate

    gts = [dict(image_id=1, boxes=[[10, 10, 50, 50]], labels=[0], height=100, width=100)]
    result = evaluate(gts, [dict(image_id=1, boxes=[[11, 10, 50, 52]], scores=[0.9], labels=[0])], ["a", "b"])
    save_eval_json(result, tmp_path / "eval.json")
    assert (
        cli(["visualize", "curves", str(run), "--eval-json", str(tmp_path / "eval.json"), "--out", str(tmp_path / "o")])
        == 0
    )
    for name in ("training_curves.png", "per_class_ap.png", "pr_curves.png"):
        assert_png(tmp_path / "o" / name)
    from mgdet.errors import MgdetError

    with pytest.raises(MgdetError, match=r"history.csv: not found \(is RUN_DIR a training run folder\?\)"):
        cli(["visualize", "curves", str(tmp_path), "--out", str(tmp_path / "q")])


def write_tiny_voc(root: Path, size: int = 80) -> None:
    """Three images in VOC layout; the middle one has only a difficult object (skipped by the figures)."""
    rng = np.random.default_rng(0)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "classes.txt").write_text("a\nb\nc\n")
    objects = {
        "000001": [("a", 5, 5, 40, 50, 0)],
        "000002": [("b", 10, 10, 60, 60, 1)],
        "000003": [("c", 20, 15, 75, 70, 0), ("a", 2, 30, 30, 78, 0)],
    }
    for stem, objs in objects.items():
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
        xml = "".join(
            f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for n, x1, y1, x2, y2, d in objs
        )
        size_xml = f"<size><width>{size}</width><height>{size}</height><depth>3</depth></size>"
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename>{size_xml}{xml}</annotation>"
        )
    (root / "ImageSets" / "Main" / "val.txt").write_text("\n".join(objects) + "\n")


def test_cli_assignment_and_detections(tmp_path: Path, tiny_detector: torch.nn.Module) -> None:
    pytest.importorskip("mgdet.engine.checkpoint")
    data = tmp_path / "data"
    write_tiny_voc(data)
    ckpts = []
    for strategy in ("iou", "mutual_guidance"):
        path = tmp_path / f"{strategy}.pt"
        run_config = {
            "data": {"root": str(data), "format": "voc", "val_split": "val", "input_size": 96},
            "train": {"strategy": strategy},
        }
        torch.save(
            {"model": tiny_detector.state_dict(), "model_config": dict(tiny_detector.config), "config": run_config},
            path,
        )
        ckpts.append(str(path))
    assert cli(["visualize", "assignment", ckpts[1], "--images", "2", "--out", str(tmp_path / "as")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "as").glob("*.png"))
    assert pngs == ["assignment_1.png", "assignment_3.png"]  # image 2 has only a difficult object
    assert (tmp_path / "as" / "assignment_3.csv").is_file()
    assert_png(tmp_path / "as" / "assignment_3.png")
    args = ["visualize", "detections", *ckpts, "--data", str(data), "--split", "val", "--images", "1"]
    assert cli([*args, "--score-thresh", "0.05", "--out", str(tmp_path / "det")]) == 0
    assert_png(tmp_path / "det" / "detections_1.png")


def test_cli_visualize_checks_the_class_names_like_eval(tmp_path: Path, tiny_checkpoint: Path, tiny_dataset: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A dataset with the checkpoint's classes in another order used to be drawn with wrong names, exit 0
    (issue 22, item 11): refused in one line, accepted with --class-map same-names."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    names = (data / "classes.txt").read_text().split()
    (data / "classes.txt").write_text("\n".join(reversed(names)) + "\n")
    for verb in (["assignment", str(tiny_checkpoint)], ["detections", str(tiny_checkpoint), str(tiny_checkpoint)]):
        args = ["visualize", *verb, "--data", str(data), "--images", "1", "--out", str(tmp_path / verb[0])]
        from mgdet.cli import main

        capsys.readouterr()
        assert main(args) == 2  # the whole command line: one line on stderr, exit 2
        err = capsys.readouterr().err
        assert str(names) in err and str(list(reversed(names))) in err and len(err.strip().splitlines()) == 1
        assert main([*args, "--class-map", "same-names"]) == 0


def test_run_images_yields_the_first_images_with_objects_resized(tiny_checkpoint: Path) -> None:
    import xml.etree.ElementTree as ET

    from mgdet.engine.checkpoint import load_detector
    from mgdet.viz.assignment import run_images

    _, cfg = load_detector(str(tiny_checkpoint))
    root, size = Path(cfg["data"]["root"]), cfg["data"]["input_size"]
    expected = []  # independently, from the VOC files: (width, height, boxes) of the first 3 images with objects
    for name in (root / "ImageSets" / "Main" / "val.txt").read_text().split():
        xml = ET.parse(root / "Annotations" / f"{name}.xml").getroot()
        boxes = [[float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
                 for o in xml.iter("object")]  # fmt: skip
        if boxes:
            expected.append((int(xml.find("size/width").text), int(xml.find("size/height").text), np.array(boxes)))
    got = list(run_images(cfg, 3, "val", progress=False))
    assert len(got) == 3
    for (x, boxes, labels, original), (w, h, xml_boxes) in zip(got, expected[:3]):
        assert x.shape == (3, size, size) and boxes.dtype == torch.float32 and labels.dtype == torch.long
        assert len(labels) == len(boxes) == len(original) == len(xml_boxes)
        np.testing.assert_allclose(original, xml_boxes, atol=1.0)  # VOC's 1-based pixel convention at most
        # EvalTransform is a plain resize: x scaled by size / width, y by size / height
        scale = np.array([size / w, size / h] * 2, np.float32)
        np.testing.assert_allclose(boxes.numpy(), original * scale, rtol=1e-5, atol=1e-3)

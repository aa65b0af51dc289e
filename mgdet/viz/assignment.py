"""Fig. 2 / Fig. 4 of the paper: which anchors change label when static IoU matching is replaced by
Localize to Classify (classification labels) or Classify to Localize (regression samples).

Colours (section 4.3 of the paper; its Fig. 4 caption swaps green and yellow, the text is followed here):

* top panel, classification: **red** = positive for static IoU matching but not for Localize to Classify,
  **green** = positive for Localize to Classify but not for static matching;
* bottom panel, regression: **red** = regression sample for static matching but not for Classify to
  Localize, **yellow** = regression sample for Classify to Localize but not for static matching;
* ground truth: white dotted boxes.

The anchor sets are computed by :func:`assignment_sets` from :func:`mgdet.assign.assign` outputs and drawn
as they are, so the figure can be checked against the tensors.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Rectangle
from torch import Tensor
from tqdm import tqdm

from mgdet.assign import Assignment, AssignParams, amplified_iou, assign
from mgdet.boxes import elementwise_iou
from mgdet.data import EvalTransform
from mgdet.engine.builders import build_dataset
from mgdet.engine.config import from_dict
from mgdet.viz.common import GREEN, GT_COLOUR, RED, YELLOW, save_figure, to_hwc_uint8

#: The three assignments compared (keys of :func:`strategy_assignments`).
COMPARED = ("iou", "localize_to_classify", "classify_to_localize")
#: Drawn sets -> colour, per panel. ``shared_*`` sets are only drawn with ``show_shared=True``.
CLS_SETS = {"red_l2c": RED, "green_l2c": GREEN}
REG_SETS = {"red_c2l": RED, "yellow_c2l": YELLOW}
SHARED_COLOUR = "#BBBBBB"
TABLE_COLUMNS = (
    "gt", "gt_class", "anchor", "sets", "iou_anchor", "iou_regressed", "score", "iou_amplified",
    "static_cls", "l2c_cls", "static_reg", "c2l_reg",
)  # fmt: skip


def _indices(mask: Tensor) -> Tensor:
    """[A] bool -> [K] long anchor indices, ascending."""
    return mask.nonzero(as_tuple=True)[0]


def assignment_sets(static: Assignment, l2c: Assignment, c2l: Assignment, image: int = 0) -> dict[str, Tensor]:
    """Anchor index sets drawn by :func:`plot_assignment` for image ``image`` of the batch.

    Classification sets compare ``cls_gt`` of ``static`` and ``l2c``; regression sets compare ``reg_gt`` of
    ``static`` and ``c2l`` (a mutual-guidance Assignment may be passed as both ``l2c`` and ``c2l``).
    "Positive" means a GT index >= 0; negative and ignored both count as not positive.

    Returns:
        ``red_l2c``, ``green_l2c``, ``shared_cls``, ``red_c2l``, ``yellow_c2l``, ``shared_reg``: ``[K]``
        long anchor indices, ascending.
    """
    s_cls, l_cls = static.cls_gt[image] >= 0, l2c.cls_gt[image] >= 0  # [A]
    s_reg, c_reg = static.reg_gt[image] >= 0, c2l.reg_gt[image] >= 0  # [A]
    return {
        "red_l2c": _indices(s_cls & ~l_cls),
        "green_l2c": _indices(l_cls & ~s_cls),
        "shared_cls": _indices(s_cls & l_cls),
        "red_c2l": _indices(s_reg & ~c_reg),
        "yellow_c2l": _indices(c_reg & ~s_reg),
        "shared_reg": _indices(s_reg & c_reg),
    }


@torch.no_grad()
def strategy_assignments(
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor,
    pred_scores: Tensor,
    params: AssignParams | None = None,
) -> dict[str, Assignment]:
    """Static, Localize-to-Classify and Classify-to-Localize assignments of one image (batch of 1).

    anchors ``[A, 4]`` (or :class:`~mgdet.assign.Priors`), gt_boxes ``[G, 4]``, gt_labels ``[G]``, pred_boxes
    ``[A, 4]`` decoded, pred_scores ``[A, C]`` sigmoid; ``params`` the knobs (defaults when None). Returns
    ``{strategy: Assignment with [1, A] tensors}`` for :data:`COMPARED`.
    """
    args = (anchors, gt_boxes[None], gt_labels[None], pred_boxes[None], pred_scores[None])
    return {s: assign(s, *args, params) for s in COMPARED}


@torch.no_grad()
def detector_predictions(detector: torch.nn.Module, image: Tensor) -> tuple[Tensor, Tensor]:
    """Raw (pre-NMS) predictions of ``detector`` for one image ``[3, S, S]`` in [0, 1].

    Returns pred_boxes ``[A, 4]`` (decoded, input pixels, as the training assignment sees them) and
    pred_scores ``[A, C]`` (sigmoid). The detector is put in eval mode.
    """
    detector.eval()
    device = next(detector.parameters()).device
    out = detector(image[None].to(device).float())
    pred_boxes = detector.decode_boxes(out["box_deltas"].float())[0]  # [A, 4]
    pred_scores = out["cls_logits"].float().sigmoid()[0]  # [A, C]
    return pred_boxes.cpu(), pred_scores.cpu()


def run_images(
    cfg_dict: dict[str, Any], images: int, split: str, desc: str = "", progress: bool = True
) -> Iterator[tuple[Tensor, Tensor, Tensor, np.ndarray]]:
    """The first ``images`` images with objects of a run's dataset (``cfg_dict``: a checkpoint's config),
    ``split`` "train" or "val", resized as at evaluation, with a progress bar.

    Yields image ``[3, S, S]``, boxes ``[G, 4]`` float S-pixels, labels ``[G]`` long and the boxes in source
    pixels ``[G, 4]`` (numpy, for COCO size bins).
    """
    cfg = from_dict(cfg_dict)
    dataset = build_dataset(cfg.data, train=split == "train")
    tf = EvalTransform(cfg.data.input_size)
    done = 0
    with tqdm(total=images, desc=desc, disable=not progress) as bar:
        for i in range(len(dataset)):
            if done == images:
                return
            img, t = dataset[i]
            original = np.asarray(t["boxes"], np.float32).reshape(-1, 4)
            x, boxes, labels = tf(img, original, np.asarray(t["labels"]))
            if len(labels) == 0:
                continue
            yield x, torch.as_tensor(boxes).float(), torch.as_tensor(labels).long(), original
            done += 1
            bar.update()


@torch.no_grad()
def detector_assignments(
    detector: torch.nn.Module, image: Tensor, gt_boxes: Tensor, gt_labels: Tensor
) -> tuple[dict[str, Assignment], Tensor, Tensor, Tensor]:
    """Run ``detector`` on ``image [3, S, S]`` and assign its anchors (FCOS: points) three ways, with
    :meth:`~mgdet.models.detector.Detector.assign` (the assignment training uses, with the detector's knobs).

    gt_boxes ``[G, 4]`` in S-pixels, gt_labels ``[G]``.

    Returns:
        (assignments as in :func:`strategy_assignments`, anchors ``[A, 4]`` or points ``[A, 2]``,
        pred_boxes ``[A, 4]``, pred_scores ``[A, C]``).
    """
    detector.eval()
    device = next(detector.parameters()).device
    out = detector(image[None].to(device).float())
    gt = gt_boxes.float()[None].to(device)
    labels = gt_labels.long()[None].to(device)
    assignments = {s: _cpu(detector.assign(out, gt, labels, s)) for s in COMPARED}
    pred_boxes = detector.decode_boxes(out["box_deltas"].float())[0].cpu()  # [A, 4]
    pred_scores = out["cls_logits"].float().sigmoid()[0].cpu()  # [A, C]
    priors = detector.priors()
    drawn = priors.boxes if priors.ranges is None else priors.centres  # anchors [A, 4] or FCOS points [A, 2]
    return assignments, drawn.cpu(), pred_boxes, pred_scores


def _cpu(a: Assignment) -> Assignment:
    return Assignment(a.cls_gt.cpu(), a.reg_gt.cpu(), None if a.cls_target is None else a.cls_target.cpu())


@torch.no_grad()
def assignment_table(
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor,
    pred_scores: Tensor,
    assignments: dict[str, Assignment],
    sets: dict[str, Tensor],
    sigma: float = AssignParams.sigma,
    class_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per anchor positive for any compared strategy (every set of :func:`assignment_sets`, shared
    ones included): its GT and the criteria each strategy ranked it by.

    Columns: :data:`TABLE_COLUMNS`. ``gt`` is the GT the anchor is assigned to (first found among static
    cls, L2C cls, static reg, C2L reg); ``score`` is the sigmoid score of that GT's class; ``iou_anchor`` and
    ``iou_amplified`` are NaN for FCOS points. Label columns hold the raw ``cls_gt`` / ``reg_gt`` values.
    Rows are sorted by GT, then by decreasing IoU_regressed.
    """
    keys = (*CLS_SETS, "shared_cls", *REG_SETS, "shared_reg")
    drawn = torch.unique(torch.cat([sets[k] for k in keys]))  # [K]
    if drawn.numel() == 0 or gt_boxes.numel() == 0:
        return []
    labels = {
        "static_cls": assignments["iou"].cls_gt[0, drawn],
        "l2c_cls": assignments["localize_to_classify"].cls_gt[0, drawn],
        "static_reg": assignments["iou"].reg_gt[0, drawn],
        "c2l_reg": assignments["classify_to_localize"].reg_gt[0, drawn],
    }  # each [K]
    gt = torch.full_like(drawn, -1)
    for lab in reversed(list(labels.values())):  # earlier columns win
        gt = torch.where(lab >= 0, lab, gt)
    gt_box = gt_boxes[gt].float()  # [K, 4]
    cls = gt_labels[gt].long()  # [K]
    score = pred_scores[drawn, cls]  # [K]
    iou_reg = elementwise_iou(pred_boxes[drawn].float(), gt_box)  # [K]
    if anchors.shape[-1] == 4:
        iou_anchor = elementwise_iou(anchors[drawn].float(), gt_box)  # [K]
        iou_amp = amplified_iou(iou_anchor, score, sigma)  # [K]
    else:
        iou_anchor = iou_amp = torch.full_like(score, math.nan)
    member = {k: torch.isin(drawn, sets[k]) for k in keys}  # each [K] bool
    order = np.lexsort((-iou_reg.numpy(), gt.numpy()))  # by GT, then IoU_regressed descending
    rows = []
    for i in order.tolist():  # formatting the output rows, not assignment math
        c = int(cls[i])
        rows.append(
            {
                "gt": int(gt[i]),
                "gt_class": class_names[c] if class_names is not None and c < len(class_names) else c,
                "anchor": int(drawn[i]),
                "sets": "+".join(k for k, m in member.items() if bool(m[i])),
                "iou_anchor": float(iou_anchor[i]),
                "iou_regressed": float(iou_reg[i]),
                "score": float(score[i]),
                "iou_amplified": float(iou_amp[i]),
                **{k: int(v[i]) for k, v in labels.items()},
            }
        )
    return rows


def write_table(rows: list[dict[str, Any]], path: str | Path) -> tuple[Path, Path]:
    """Write :func:`assignment_table` rows as ``path`` (.csv) and the same stem .md (markdown)."""
    path = Path(path).with_suffix(".csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(TABLE_COLUMNS)
        writer.writerows([[fmt(r[c]) for c in TABLE_COLUMNS] for r in rows])
    md = path.with_suffix(".md")
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in TABLE_COLUMNS) + " |" for r in rows]
    md.write_text("\n".join(lines) + "\n")
    return path, md


def _shape_patch(box: Sequence[float], colour: str, gid: str, lw: float) -> Rectangle | Circle:
    """A box ``[4]`` xyxy as an unfilled rectangle, or a point ``[2]`` as a small filled circle."""
    if len(box) == 2:
        patch: Rectangle | Circle = Circle((box[0], box[1]), radius=2.5, facecolor=colour, edgecolor="black", lw=0.5)
    else:
        x1, y1, x2, y2 = box
        patch = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, lw=lw)
    patch.set_gid(gid)
    return patch


def _draw_panel(
    ax: Any,
    image: np.ndarray,
    gt_boxes: Tensor,
    anchors: Tensor,
    sets: dict[str, Tensor],
    drawn: dict[str, str],
    legend: dict[str, str],
    shared: str | None,
) -> None:
    h, w = image.shape[:2]
    ax.imshow(image, extent=(0, w, h, 0))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()
    handles = []
    if shared is not None:
        for box in anchors[sets[shared]].tolist():
            ax.add_patch(_shape_patch(box, SHARED_COLOUR, shared, 0.6))
        handles.append(Line2D([], [], color=SHARED_COLOUR, label=f"positive for both ({len(sets[shared])})"))
    for key, colour in drawn.items():
        for box in anchors[sets[key]].tolist():  # one patch per drawn anchor (drawing, not math)
            ax.add_patch(_shape_patch(box, colour, key, 1.4))
        handles.append(Line2D([], [], color=colour, lw=2, label=f"{legend[key]} ({len(sets[key])})"))
    for x1, y1, x2, y2 in gt_boxes.tolist():
        rect = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=GT_COLOUR, lw=1.6, ls=":")
        rect.set_gid("gt")
        ax.add_patch(rect)
    handles.append(Line2D([], [], color="black", ls=":", label="ground truth (white dotted)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


LEGEND = {
    "red_l2c": "red: positive for static IoU only",
    "green_l2c": "green: positive for Localize to Classify only",
    "red_c2l": "red: regression sample for static IoU only",
    "yellow_c2l": "yellow: regression sample for Classify to Localize only",
}


def plot_assignment(
    image: np.ndarray | Tensor,
    gt_boxes: Tensor,
    anchors: Tensor,
    sets: dict[str, Tensor],
    title: str | None = None,
    show_shared: bool = False,
) -> Figure:
    """Draw the label-assignment differences of one image; returns the Figure.

    Args:
        image: ``[3, S, S]`` float in [0, 1] or ``[S, S, 3]`` uint8, in the frame of ``anchors``.
        gt_boxes: ``[G, 4]`` xyxy, drawn as white dotted boxes.
        anchors: ``[A, 4]`` xyxy boxes or ``[A, 2]`` FCOS points.
        sets: from :func:`assignment_sets`.
        show_shared: also draw anchors positive for both strategies, in light grey.

    ``fig.axes[0]`` is the classification panel (red / green), ``fig.axes[1]`` the regression panel
    (red / yellow). Every drawn anchor is one patch whose ``gid`` is its set name (ground truth: "gt").
    """
    img = to_hwc_uint8(image)
    h, w = img.shape[:2]
    fig = Figure(figsize=(4.0 * w / max(h, 1) + 4.2, 8.0), layout="constrained")
    ax_cls, ax_reg = fig.subplots(2, 1)
    gt_boxes, anchors = gt_boxes.detach().cpu().float(), anchors.detach().cpu().float()
    _draw_panel(ax_cls, img, gt_boxes, anchors, sets, CLS_SETS, LEGEND, "shared_cls" if show_shared else None)
    _draw_panel(ax_reg, img, gt_boxes, anchors, sets, REG_SETS, LEGEND, "shared_reg" if show_shared else None)
    ax_cls.set_title("classification labels: static IoU vs Localize to Classify", fontsize=10)
    ax_reg.set_title("regression samples: static IoU vs Classify to Localize", fontsize=10)
    if title:
        fig.suptitle(title)
    return fig


def render_assignment(
    detector: torch.nn.Module,
    image: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    out_stem: str | Path,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Everything for one image: assign with the detector's predictions, save ``<out_stem>.png`` and the
    per-anchor table ``<out_stem>.csv`` / ``.md``.

    image ``[3, S, S]`` in [0, 1]; gt_boxes ``[G, 4]`` S-pixels; gt_labels ``[G]``.
    Returns ``dict(png, csv, md, sets, rows)``.
    """
    assignments, anchors, pred_boxes, pred_scores = detector_assignments(detector, image, gt_boxes, gt_labels)
    sets = assignment_sets(assignments["iou"], assignments["localize_to_classify"], assignments["classify_to_localize"])
    sigma = detector.assign_params.sigma
    rows = assignment_table(
        anchors, gt_boxes.float().cpu(), gt_labels.long().cpu(), pred_boxes, pred_scores, assignments, sets,
        sigma=sigma, class_names=class_names,
    )  # fmt: skip
    out_stem = Path(out_stem)
    png = save_figure(plot_assignment(image, gt_boxes, anchors, sets, title=title), out_stem.with_suffix(".png"))
    csv_path, md_path = write_table(rows, out_stem.with_suffix(".csv"))
    return {"png": png, "csv": csv_path, "md": md_path, "sets": sets, "rows": rows}


@torch.no_grad()
def overlap_sums(
    assignments: dict[str, Assignment], gt_boxes: Tensor, gt_labels: Tensor, pred_boxes: Tensor, pred_scores: Tensor
) -> dict[str, float]:
    """How much L2C and C2L change static matching on one image (sums, to be pooled over images).

    ``assignments`` as returned by :func:`strategy_assignments` (``[1, A]``); gt_boxes ``[G, 4]``, gt_labels
    ``[G]``, pred_boxes ``[A, 4]`` decoded, pred_scores ``[A, C]`` sigmoid. Keys: ``static`` (static positives),
    ``l2c_kept`` / ``c2l_kept`` (of those, still a classification / regression sample under L2C / C2L),
    ``iou_reg_static`` / ``iou_reg_l2c`` (summed IoU of a positive's regressed box with its GT, with counts
    ``static`` / ``l2c``) and ``score_static`` / ``score_c2l`` (summed class score of the GT's class, counts
    ``static`` / ``c2l``).
    """
    st = assignments["iou"].cls_gt[0]  # [A] GT index or -1/-2
    l2c = assignments["localize_to_classify"].cls_gt[0]
    c2l = assignments["classify_to_localize"].reg_gt[0]
    gt_boxes, gt_labels = gt_boxes.float(), gt_labels.long()

    def iou_sum(gt: Tensor) -> float:
        idx = (gt >= 0).nonzero()[:, 0]
        return float(elementwise_iou(pred_boxes[idx].float(), gt_boxes[gt[idx]]).sum())

    def score_sum(gt: Tensor) -> float:
        idx = (gt >= 0).nonzero()[:, 0]
        return float(pred_scores[idx, gt_labels[gt[idx]]].sum())

    pos = st >= 0
    return {
        "static": float(pos.sum()), "l2c": float((l2c >= 0).sum()), "c2l": float((c2l >= 0).sum()),
        "l2c_kept": float((pos & (l2c >= 0)).sum()), "c2l_kept": float((pos & (c2l >= 0)).sum()),
        "iou_reg_static": iou_sum(st), "iou_reg_l2c": iou_sum(l2c),
        "score_static": score_sum(st), "score_c2l": score_sum(c2l),
    }  # fmt: skip


def overlap_summary(sums: Sequence[dict[str, float]]) -> dict[str, float]:
    """Pool :func:`overlap_sums` of several images into rates and means (NaN where a count is 0)."""
    tot = {k: sum(s[k] for s in sums) for k in (sums[0] if sums else {})}

    def ratio(a: str, b: str) -> float:
        return tot[a] / tot[b] if tot.get(b) else math.nan

    return {
        "static_positives": tot.get("static", 0.0),
        "l2c_kept": ratio("l2c_kept", "static"), "c2l_kept": ratio("c2l_kept", "static"),
        "iou_reg_static": ratio("iou_reg_static", "static"), "iou_reg_l2c": ratio("iou_reg_l2c", "l2c"),
        "score_static": ratio("score_static", "static"), "score_c2l": ratio("score_c2l", "c2l"),
    }  # fmt: skip

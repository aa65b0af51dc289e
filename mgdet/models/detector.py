"""Detector = backbone + neck + head, with its anchors (or FCOS points), loss and inference.

:func:`build_detector` is the only constructor; ``Detector.config`` holds its arguments so a checkpoint
can rebuild the model with ``build_detector(**config)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mgdet import anchors as anchor_lib
from mgdet.assign import Assignment, Priors, assign
from mgdet.boxes import clip_boxes
from mgdet.catalog import DEFAULT_INPUT_SIZE, DETECTORS, as_hw
from mgdet.losses import LossConfig
from mgdet.models.backbones import build_backbone
from mgdet.models.heads import LevelHead, SharedTowerHead
from mgdet.models.kinds import AnchorKind, PointKind, PriorKind
from mgdet.models.necks import AuthorsFPNNeck, FSSDNeck, RetinaFPN, RFBNeck
from mgdet.models.pretrained import load_pretrained
from mgdet.nms import batched_nms
from mgdet.postprocess import PAPER_POSTPROCESS
from mgdet.stats import positive_class_scores
from mgdet.strategies import AssignParams
from mgdet.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD


class Detector(nn.Module):
    """One-stage detector. ``forward(images [B, 3, H, W] RGB in [0, 1])`` -> ``{"cls_logits" [B, A, C],
    "box_deltas" [B, A, 4]}`` (+ ``"centerness" [B, A]`` for FCOS).

    ``kind`` (:mod:`mgdet.models.kinds`: anchors or points) builds the priors, decodes, scores and picks the
    loss; :meth:`priors` (anchor boxes, or FCOS points with their strides and ranges) are generated from the
    real feature-map sizes and follow the input size of the latest forward.
    """

    def __init__(
        self,
        config: dict[str, Any],
        backbone: nn.Module,
        neck: nn.Module,
        head: nn.Module,
        kind: PriorKind,
        strides: tuple[int, ...],
        loss_cfg: LossConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = dict(config)
        self.assign_params = AssignParams.from_mapping(self.config)  # every rule's knobs, defaults when absent
        self.name = config["name"]
        self.num_classes = int(config["num_classes"])
        self.kind = kind
        self.level_strides = strides
        self.loss_cfg = loss_cfg or LossConfig()
        self.channels_last = bool(config.get("channels_last", False))
        self.backbone, self.neck, self.head = backbone, neck, head
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.feature_sizes: list[tuple[int, int]] = []
        self.input_hw: tuple[int, int] = (0, 0)
        self._priors: Priors | None = None  # of the latest input size (see priors())
        size = config.get("input_size", DEFAULT_INPUT_SIZE)
        self.input_size = size
        self._probe(size)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    # ----------------------------------------------------------------------------------------- anchors
    @torch.no_grad()
    def _probe(self, size: int | tuple[int, int]) -> None:
        """One dummy forward (eval mode) to read the real feature-map sizes and build anchors."""
        h, w = as_hw(size)
        was_training = self.training
        self.eval()
        self.forward(torch.zeros(1, 3, h, w, device=self.mean.device))
        self.train(was_training)

    def _set_priors(self, sizes: list[tuple[int, int]], hw: tuple[int, int]) -> None:
        self._priors = self.kind.priors(sizes, hw, self.mean.device)
        self.feature_sizes, self.input_hw = sizes, hw

    def priors(self) -> Priors:
        """The current anchors (FCOS: points) with their centres, strides and levels (:class:`Priors`).

        Built when the input size changes; they follow the detector's device (``.to(device)``)."""
        assert self._priors is not None  # built by the probe forward of __init__
        if self._priors.boxes.device != self.mean.device:
            self._priors = self._priors.to(self.mean.device)
        return self._priors

    # ----------------------------------------------------------------------------------------- forward
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        hw = (int(images.shape[-2]), int(images.shape[-1]))
        return self.forward_features(self.backbone_features(images), hw)

    def backbone_features(self, images: Tensor) -> list[Tensor]:
        """``images [B, 3, H, W]`` RGB in [0, 1] -> the backbone's feature maps (the neck's input)."""
        x = (images - self.mean) / self.std  # [B, 3, H, W] ImageNet-normalized
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return list(self.backbone(x))

    def forward_features(self, features: list[Tensor], hw: tuple[int, int]) -> dict[str, Tensor]:
        """Neck and head on precomputed backbone ``features`` of ``hw``-sized inputs (see ``forward``)."""
        if self.channels_last:
            features = [f.contiguous(memory_format=torch.channels_last) for f in features]
        levels = self.neck(features)
        sizes = [(int(f.shape[-2]), int(f.shape[-1])) for f in levels]
        if sizes != self.feature_sizes or hw != self.input_hw:
            self._set_priors(sizes, hw)
        out = self.head(levels)
        if "centerness" in out:
            out["centerness"] = out["centerness"].squeeze(-1)  # [B, A]
        return out

    def decode_boxes(self, box_deltas: Tensor) -> Tensor:
        """[B, A, 4] head output -> [B, A, 4] xyxy input pixels."""
        return self.kind.decode(box_deltas, self.priors())

    # -------------------------------------------------------------------------------------------- loss
    @torch.no_grad()
    def assign(
        self,
        outputs: dict[str, Tensor],
        gt_boxes: Tensor,
        gt_labels: Tensor,
        strategy: str,
        params: AssignParams | None = None,
    ) -> Assignment:
        """Assign this detector's priors with ``strategy`` and its knobs (:attr:`assign_params`, or ``params`` for
        this call: the trainer's ramp), on the detached predictions of ``outputs``: what :meth:`loss` trains on
        and what the figures show.

        gt_boxes ``[B, G, 4]`` (G may be 0), gt_labels ``[B, G]`` (-1 padding)."""
        gt_boxes, gt_labels = _at_least_one_column(gt_boxes, gt_labels)
        pred_boxes = self.decode_boxes(outputs["box_deltas"].detach().float())  # [B, A, 4]
        pred_scores = outputs["cls_logits"].detach().float().sigmoid()  # [B, A, C]
        return assign(strategy, self.priors(), gt_boxes, gt_labels, pred_boxes, pred_scores,
                      params or self.assign_params)  # fmt: skip

    def loss(
        self,
        outputs: dict[str, Tensor],
        gt_boxes: Tensor,
        gt_labels: Tensor,
        strategy: str,
        params: AssignParams | None = None,
    ) -> dict[str, Any]:
        """Assign with ``strategy`` (:meth:`assign`, ``params`` as there), then the losses; see CONTRACTS.md. The
        dict holds the loss tensors, ``pos_scores`` and the step's :class:`~mgdet.assign.Assignment`
        (``"assignment"``)."""
        gt_boxes, gt_labels = _at_least_one_column(gt_boxes, gt_labels)
        a = self.assign(outputs, gt_boxes, gt_labels, strategy, params)
        out = self.kind.loss(a, outputs, self.priors(), gt_boxes, gt_labels, self.loss_cfg)
        pred_scores = outputs["cls_logits"].detach().float().sigmoid()  # [B, A, C]
        pos_scores = positive_class_scores(a.cls_gt, gt_labels, pred_scores)  # [P] the p of IoU_amplified
        return {**out, "disagree": a.disagreement().detach(), "pos_scores": pos_scores,
                "assignment": a}  # fmt: skip

    # --------------------------------------------------------------------------------------- inference
    def dense_predictions(self, outputs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Head outputs -> (scores ``[B, A, C]``, boxes ``[B, A, 4]``): sigmoid class scores (FCOS:
        ``sqrt(sigmoid(cls) * sigmoid(centerness))``) and decoded xyxy boxes in input pixels, clipped.

        Everything inference does before its top-k; the ONNX graph (:mod:`mgdet.export`) ends here.
        """
        scores = self.kind.scores(outputs)  # [B, A, C]
        h, w = self.input_hw  # set by the forward that produced ``outputs`` (python ints: graph constants)
        boxes = clip_boxes(self.decode_boxes(outputs["box_deltas"].float()), h, w)  # [B, A, 4]
        return scores, boxes

    @torch.no_grad()
    def candidates(
        self,
        outputs: dict[str, Tensor],
        score_thresh: float = PAPER_POSTPROCESS.score_thresh,
        pre_nms_topk: int = PAPER_POSTPROCESS.pre_nms_topk,
    ) -> list[dict[str, Tensor]]:
        """Pre-NMS detections: per image the top ``pre_nms_topk`` (anchor, class) pairs scoring above
        ``score_thresh``, score-descending: ``boxes [K, 4]``, ``scores [K]``, ``labels [K]``."""
        scores, boxes = self.dense_predictions(outputs)  # [B, A, C], [B, A, 4]
        b, a, c = scores.shape
        top_s, top_i = scores.reshape(b, -1).topk(min(pre_nms_topk, a * c), dim=1)  # [B, k]
        anchor_i, labels = top_i // c, top_i % c
        top_boxes = boxes.gather(1, anchor_i[..., None].expand(-1, -1, 4))  # [B, k, 4]
        keep = top_s > score_thresh  # [B, k]
        return [{"boxes": top_boxes[i][keep[i]], "scores": top_s[i][keep[i]], "labels": labels[i][keep[i]]}
                for i in range(b)]  # fmt: skip

    @torch.no_grad()
    def predict(
        self,
        outputs: dict[str, Tensor],
        score_thresh: float = PAPER_POSTPROCESS.score_thresh,
        nms_iou: float = PAPER_POSTPROCESS.nms_iou,
        max_det: int = PAPER_POSTPROCESS.max_det,
        pre_nms_topk: int = PAPER_POSTPROCESS.pre_nms_topk,
    ) -> list[dict[str, Tensor]]:
        """Decode, clip, threshold, per-image top-k over (anchor, class) pairs, class-aware NMS,
        at most ``max_det`` per image (:func:`mgdet.postprocess.postprocess` is the numpy twin)."""
        results = []
        for cand in self.candidates(outputs, score_thresh, pre_nms_topk):
            keep = batched_nms(cand["boxes"], cand["scores"], cand["labels"], nms_iou)[:max_det]
            results.append({k: v[keep] for k, v in cand.items()})
        return results


def build_detector(
    name: str,
    backbone: str,
    num_classes: int,
    input_size: int | tuple[int, int] = DEFAULT_INPUT_SIZE,
    pretrained: str | None = None,
    **opts: Any,
) -> Detector:
    """Build a detector.

    name: ``"fssd"`` | ``"retinanet"`` | ``"rfbnet"`` (VGG-16 only) | ``"fcos"``; backbone: ``"resnet18"`` |
    ``"vgg16"`` | ``"mobilenet_v2"``. ``pretrained``: weight source for the backbone (see
    :func:`mgdet.models.pretrained.load_pretrained`), not stored in ``config``.

    Options (all stored in ``Detector.config``): ``neck_width`` (256; RFBNet 512), ``head_width``
    (= neck width), ``head_depth`` (1 per-level 3x3 conv; canonical 4), ``num_levels`` (4),
    ``canonical`` (RetinaNet only: P3-P7 FPN, shared 4-conv towers, 9 anchors), ``norm`` (canonical
    towers: ``"gn"`` | ``"none"``), ``fc67`` (VGG fc6/fc7; default only for RFBNet), ``channels_last``,
    ``pos_iou``/``neg_iou``/``sigma`` (assignment), ``loss`` (dict of :class:`LossConfig` fields),
    ``anchor_base`` (24: the paper's smallest anchor at 320 px; scale it with the input, e.g. 19.2 at 256).
    """
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose from {DETECTORS}")
    canonical = bool(opts.get("canonical", False))
    if canonical and name != "retinanet":
        raise ValueError("canonical=True is only defined for retinanet")
    if name == "rfbnet" and backbone != "vgg16":
        raise ValueError("RFBNet is built on VGG-16 only (as in the paper)")
    config: dict[str, Any] = {
        "name": name, "backbone": backbone, "num_classes": num_classes, "input_size": input_size, **opts
    }  # fmt: skip
    fc67 = bool(opts.get("fc67", name == "rfbnet"))
    bb = build_backbone(backbone, fc67=fc67)
    if pretrained is not None:
        load_pretrained(bb, pretrained)
    in_ch = tuple(bb.out_channels)
    num_levels = int(opts.get("num_levels", 5 if canonical else 4))
    strides = tuple(8 * 2**i for i in range(num_levels))
    loss_cfg = LossConfig(**opts.get("loss", {}))

    if canonical:
        width = int(opts.get("neck_width", 256))
        neck: nn.Module = RetinaFPN(in_ch, width, num_levels)
        layout = anchor_lib.retinanet_layout(strides)
        head: nn.Module = SharedTowerHead(
            width, layout.num_anchors, {"cls_logits": num_classes, "box_deltas": 4},
            width=int(opts.get("head_width", width)), depth=int(opts.get("head_depth", 4)),
            norm=opts.get("norm", "gn"),
        )  # fmt: skip
        return Detector(config, bb, neck, head, AnchorKind(layout), strides, loss_cfg)

    if name == "rfbnet":
        if num_levels != 4:
            raise ValueError("RFBNet has exactly 4 levels")
        neck = RFBNeck(in_ch, int(opts.get("neck_width", 512)))
    elif name == "fssd":
        neck = FSSDNeck(in_ch, int(opts.get("neck_width", 256)), num_levels)
    else:  # the authors' RetinaNet trunk, also used by FCOS
        neck = AuthorsFPNNeck(in_ch, int(opts.get("neck_width", 256)), num_levels)
    head_width = int(opts.get("head_width", opts.get("neck_width", 256)))
    head_depth = int(opts.get("head_depth", 1))
    if name == "fcos":
        outputs = {"cls_logits": num_classes, "box_deltas": 4, "centerness": 1}
        head = LevelHead(neck.out_channels, 1, outputs, head_width, head_depth)
        return Detector(config, bb, neck, head, PointKind(strides), strides, loss_cfg)
    layout = anchor_lib.paper_layout(strides, float(opts.get("anchor_base", anchor_lib.PAPER_ANCHOR_BASE)))
    outputs = {"cls_logits": num_classes, "box_deltas": 4}
    head = LevelHead(neck.out_channels, layout.num_anchors, outputs, head_width, head_depth)
    return Detector(config, bb, neck, head, AnchorKind(layout), strides, loss_cfg)


def _at_least_one_column(gt_boxes: Tensor, gt_labels: Tensor) -> tuple[Tensor, Tensor]:
    """A batch without any GT gets one padding column: the gathers of the assignment and the losses stay valid."""
    if gt_boxes.shape[1] > 0:
        return gt_boxes, gt_labels
    return gt_boxes.new_zeros(gt_boxes.shape[0], 1, 4), gt_labels.new_full((gt_labels.shape[0], 1), -1)

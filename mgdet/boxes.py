"""Box conversions, pairwise IoU and the SSD-style anchor encoding.

Boxes are ``xyxy`` in absolute pixels of the network input unless a name says otherwise.
All functions are pure, batched over leading dimensions and device-agnostic.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: SSD variances used by the paper's detectors: centre offsets are divided by 0.1, log-sizes by 0.2.
DEFAULT_VARIANCES: tuple[float, float] = (0.1, 0.2)
#: Largest log-size delta accepted by ``decode`` (exp(4.135) ~ 62.5x), as in torchvision's BoxCoder.
MAX_LOG_DELTA = math.log(1000.0 / 16)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """[..., 4] (x1, y1, x2, y2) -> [..., 4] (cx, cy, w, h)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x1, y1, x2, y2)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """[..., 4] xyxy -> [...] area; degenerate boxes (x2 <= x1 or y2 <= y1) have area 0."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU, batched over leading dimensions.

    boxes1 ``[..., N, 4]`` and boxes2 ``[..., M, 4]`` (leading dims broadcast) -> ``[..., N, M]``.
    A pair whose union is empty (two degenerate boxes) has IoU 0, never NaN. Written with in-place ops on
    the ``[..., N, M]`` result so that large matrices (assignment: B x G x A) stay memory-light.
    """
    # contiguous coordinate planes make the broadcast kernels below several times faster
    ax1, ay1, ax2, ay2 = (boxes1[..., i].contiguous()[..., :, None] for i in range(4))  # [..., N, 1]
    bx1, by1, bx2, by2 = (boxes2[..., i].contiguous()[..., None, :] for i in range(4))  # [..., 1, M]
    iw = torch.minimum(ax2, bx2).sub_(torch.maximum(ax1, bx1)).clamp_(min=0)
    ih = torch.minimum(ay2, by2).sub_(torch.maximum(ay1, by1)).clamp_(min=0)
    inter = iw.mul_(ih)  # [..., N, M]
    union = (box_area(boxes1)[..., :, None] + box_area(boxes2)[..., None, :]).sub_(inter)
    return inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))


def elementwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of aligned pairs: [..., 4] x [..., 4] -> [...]."""
    lt = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    rb = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(boxes1) + box_area(boxes2) - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def clip_boxes(boxes: Tensor, height: float, width: float) -> Tensor:
    """Clip [..., 4] xyxy boxes to the image ``[0, width] x [0, height]``."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)), dim=-1)


def valid_boxes(boxes: Tensor, min_size: float = 0.0) -> Tensor:
    """[..., 4] -> [...] bool: finite boxes with width and height strictly greater than ``min_size``."""
    wh = boxes[..., 2:] - boxes[..., :2]
    return torch.isfinite(boxes).all(-1) & (wh > min_size).all(-1)


def encode(boxes: Tensor, anchors: Tensor, variances: tuple[float, float] = DEFAULT_VARIANCES) -> Tensor:
    """SSD regression targets of ``boxes`` w.r.t. ``anchors`` (both [..., 4] xyxy, broadcast) -> [..., 4].

    ``(dx, dy, dw, dh) = ((cx - acx) / (v0 * aw), (cy - acy) / (v0 * ah), log(w / aw) / v1, log(h / ah) / v1)``.
    Degenerate target sizes are clamped to a tiny positive value so the log stays finite.
    """
    b = xyxy_to_cxcywh(boxes)
    a = xyxy_to_cxcywh(anchors)
    eps = 1e-6
    aw, ah = a[..., 2].clamp(min=eps), a[..., 3].clamp(min=eps)
    dx = (b[..., 0] - a[..., 0]) / (variances[0] * aw)
    dy = (b[..., 1] - a[..., 1]) / (variances[0] * ah)
    dw = torch.log(b[..., 2].clamp(min=eps) / aw) / variances[1]
    dh = torch.log(b[..., 3].clamp(min=eps) / ah) / variances[1]
    return torch.stack((dx, dy, dw, dh), dim=-1)


def decode(deltas: Tensor, anchors: Tensor, variances: tuple[float, float] = DEFAULT_VARIANCES) -> Tensor:
    """Inverse of :func:`encode`: deltas [..., 4] + anchors [..., 4] xyxy (broadcast) -> boxes [..., 4] xyxy.

    Log-size deltas are clamped at ``MAX_LOG_DELTA`` so an untrained head never produces inf boxes.
    """
    a = xyxy_to_cxcywh(anchors)
    cx = a[..., 0] + deltas[..., 0] * variances[0] * a[..., 2]
    cy = a[..., 1] + deltas[..., 1] * variances[0] * a[..., 3]
    w = a[..., 2] * torch.exp((deltas[..., 2] * variances[1]).clamp(max=MAX_LOG_DELTA))
    h = a[..., 3] * torch.exp((deltas[..., 3] * variances[1]).clamp(max=MAX_LOG_DELTA))
    return cxcywh_to_xyxy(torch.stack((cx, cy, w, h), dim=-1))


# ------------------------------------------------------------------------ FCOS points (anchor-free)
def point_distances(points: Tensor, gt_boxes: Tensor) -> Tensor:
    """(l, t, r, b) distances of points [A, 2] to boxes [B, G, 4] -> [B, G, A, 4]."""
    p = points[None, None]  # [1, 1, A, 2]
    g = gt_boxes[:, :, None]  # [B, G, 1, 4]
    return torch.cat((p - g[..., :2], g[..., 2:] - p), dim=-1)


def centerness(ltrb: Tensor) -> Tensor:
    """[..., 4] (l, t, r, b) -> [...] sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)); 0 outside the box."""
    d = ltrb.clamp(min=0)
    lr = d[..., 0::2]
    tb = d[..., 1::2]
    ratio = (lr.min(-1).values / lr.max(-1).values.clamp(min=1e-12)) * (
        tb.min(-1).values / tb.max(-1).values.clamp(min=1e-12)
    )
    return ratio.sqrt()


def decode_ltrb(deltas: Tensor, points: Tensor, strides: Tensor) -> Tensor:
    """deltas [..., A, 4] (log distances / stride) + points [A, 2] -> boxes [..., A, 4] xyxy."""
    d = torch.exp(deltas.clamp(max=MAX_LOG_DELTA)) * strides[:, None]
    return torch.cat((points - d[..., :2], points + d[..., 2:]), dim=-1)

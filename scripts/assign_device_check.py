"""Device check of the assignment: every strategy on CUDA against the CPU result (anchors and FCOS points),
then five SGD steps of RetinaNet / FSSD / FCOS on CUDA with ATSS, task-aligned and Mutual Guidance.

    PYTHONPATH=. python3 scripts/assign_device_check.py          # DEV=cpu for a dry run without a GPU

Prints, per strategy, the number of anchors whose labels differ between the devices (0 expected; a float
rounding difference can move a near-tie) and the largest soft-target difference; ends with DIFFERENCES n.
"""

import os
import sys

import torch

from mgdet.anchors import paper_layout
from mgdet.assign import STRATEGIES, assign, layout_priors, point_priors
from mgdet.assign.fcos import level_ranges
from mgdet.models import build_detector
from mgdet.models.fcos import decode_ltrb, generate_points

dev = torch.device(os.environ.get("DEV", "cuda"))
print(torch.__version__, torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", flush=True)
g = torch.Generator().manual_seed(0)
B, G, C = 16, 20, 20
priors = layout_priors(paper_layout(), 320)
xy = torch.rand(B, G, 2, generator=g) * 320 * 0.7
gt = torch.cat([xy, xy + 16 + torch.rand(B, G, 2, generator=g) * 320 * 0.3], -1)
lab = torch.randint(0, C, (B, G), generator=g)
lab[0, -3:] = -1
lab[1] = -1
pb = priors.boxes[None] + (torch.rand(B, priors.num, 4, generator=g) - 0.5) * 8
ps = torch.rand(B, priors.num, C, generator=g) * 0.5
strides, sizes = (8, 16, 32, 64), [(40, 40), (20, 20), (10, 10), (5, 5)]
pts, st, rg = generate_points(strides, sizes, level_ranges(4))
pp = point_priors(pts, st, rg, [h * w for h, w in sizes])
ppb = decode_ltrb(torch.randn(B, pp.num, 4, generator=g) * 0.5 + 1.0, pts, st)
pps = torch.rand(B, pp.num, C, generator=g)
bad = 0
for kind, fn, pr, boxes, scores in (("anchors", assign, priors, pb, ps), ("points", assign, pp, ppb, pps)):
    for s in STRATEGIES:
        a = fn(s, pr, gt, lab, boxes, scores)
        b = fn(s, pr.to(dev), gt.to(dev), lab.to(dev), boxes.to(dev), scores.to(dev))
        d_cls = int((a.cls_gt != b.cls_gt.cpu()).sum())
        d_reg = int((a.reg_gt != b.reg_gt.cpu()).sum())
        d_t = 0.0 if a.cls_target is None else float((a.cls_target - b.cls_target.cpu()).abs().max())
        bad += d_cls + d_reg
        print(
            f"{kind:8s} {s:22s} pos {int(a.cls_pos.sum()):6d}  differing cls {d_cls} reg {d_reg}  "
            f"max |target diff| {d_t:.2e}",
            flush=True,
        )
for name in ("retinanet", "fssd", "fcos"):
    torch.manual_seed(0)
    m = build_detector(name, "mobilenet_v2", 3, input_size=128, neck_width=32, head_depth=1).to(dev)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    img = torch.rand(2, 3, 128, 128, device=dev)
    gb = torch.tensor([[[15.0, 22, 68, 82], [45, 8, 90, 45]], [[5.0, 5, 100, 120], [0, 0, 0, 0]]], device=dev)
    gl = torch.tensor([[0, 2], [1, -1]], device=dev)
    for s in ("atss", "task_aligned", "mutual_guidance"):
        losses = []
        for _ in range(5):
            out = m.loss(m(img), gb, gl, s)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            losses.append(round(out["loss"].item(), 4))
        print(name, s, losses, "priors on", m.priors().boxes.device, flush=True)
print("DIFFERENCES", bad)
sys.exit(0)

"""CPU speed of the detectors: training and inference images/s, and the share of a training step spent
in label assignment. Prints a markdown table.

    .venv/bin/python benchmarks/model_speed.py --models retinanet:resnet18 fssd:resnet18 light
    .venv/bin/python benchmarks/model_speed.py --models recipe:retinanet_mbv2 --batch 16   # the CPU benchmark

``recipe:<detector>`` is the model of the shipped CPU benchmark recipe exactly as ``mgdet reproduce`` trains
it (its input size, width, head depth and frozen backbone stages) without its backbone feature cache;
``recipe-cached:<detector>`` the same step once every view is in the cache (``train.feature_cache_mb``: the
backbone's output is looked up, not computed: the steady state of a run); ``recipe-frozen3:<detector>``
the model with only the first 3 backbone stages frozen (as the first 256 px recipe did); ``--size`` is
ignored for all three.
The "vs first" column is each row's training speed over the first row's, measured in the same run:

    .venv/bin/python benchmarks/model_speed.py --models recipe-frozen3:retinanet_mbv2 recipe:retinanet_mbv2 \
        recipe-cached:retinanet_mbv2 --batch 16 --channels-last on
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

import mgdet.models.detector as det_module
from mgdet.assign import sparse
from mgdet.engine.builders import freeze_backbone_stages, keep_frozen_bn_eval
from mgdet.engine.feature_cache import FeatureCache
from mgdet.models import build_detector
from mgdet.utils.machine import machine_description

#: named presets: "light" is the MobileNetV2 model of the shipped CPU benchmark
PRESETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "light": ("fssd", "mobilenet_v2", {"neck_width": 96, "head_width": 64}),
    "canonical": ("retinanet", "resnet18", {"canonical": True}),
}
DEFAULT_MODELS = ["retinanet:resnet18", "fssd:resnet18", "light"]


def parse_model(spec: str) -> tuple[str, str, str, dict[str, Any]]:
    """``"light"`` / ``"canonical"``, ``"recipe:<detector>"`` or ``"name:backbone"`` -> (label, name, backbone,
    opts); recipe opts carry ``input_size`` and ``frozen_stages`` too."""
    if spec.startswith(("recipe:", "recipe-frozen3:", "recipe-cached:")):
        from mgdet.demo.recipe import grid_config
        from mgdet.engine.builders import model_kwargs

        kind, detector = spec.split(":", 1)
        cfg = grid_config(detector, "mutual_guidance", 0, "unused")
        if kind == "recipe-frozen3":  # the previous recipe's trainable set: backbone stages 4-5 train
            cfg.model.frozen_stages = 3
        kw = model_kwargs(cfg, 10)
        name, backbone = kw.pop("name"), kw.pop("backbone")
        kw.pop("num_classes")
        kw.pop("channels_last")
        kw["frozen_stages"] = cfg.model.frozen_stages
        kw["cached"] = kind == "recipe-cached"
        return f"{name}-{backbone} ({kind}, {kw['input_size']} px, frozen {kw['frozen_stages']})", name, backbone, kw
    if spec in PRESETS:
        name, backbone, opts = PRESETS[spec]
        return f"{name}-{backbone} ({spec})", name, backbone, opts
    name, backbone = spec.split(":")
    return f"{name}-{backbone}", name, backbone, {}


class Timer:
    """Accumulates the wall time of a wrapped function."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.total = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.total += time.perf_counter() - t


def synthetic_batch(batch: int, size: int, num_classes: int, gen: torch.Generator, crowded: bool = False):
    """Random images and GT: 4 objects per image (12 px up to 40 % of the side), or with ``crowded`` 100-300
    small ones (4-16 px, as ``mgdet data generate --crowded``) per image."""
    images = torch.rand(batch, 3, size, size, generator=gen)
    if crowded:
        g = 300
        xy = torch.rand(batch, g, 2, generator=gen) * (size - 16)
        wh = torch.rand(batch, g, 2, generator=gen) * 12 + 4
        counts = torch.randint(100, 301, (batch, 1), generator=gen)
    else:
        g = 6
        xy = torch.rand(batch, g, 2, generator=gen) * size * 0.7
        wh = torch.rand(batch, g, 2, generator=gen) * size * 0.4 + 12
        counts = torch.full((batch, 1), 4)
    boxes = torch.cat((xy, (xy + wh).clamp(max=size)), dim=-1)
    labels = torch.randint(0, num_classes, (batch, g), generator=gen)
    labels[torch.arange(g)[None] >= counts] = -1  # padding
    return images, boxes, labels


def bench(spec: str, channels_last: bool, args: argparse.Namespace) -> dict[str, Any]:
    label, name, backbone, opts = parse_model(spec)
    opts = dict(opts)
    size = int(opts.pop("input_size", args.size))
    frozen = int(opts.pop("frozen_stages", 0))
    cached = bool(opts.pop("cached", False))
    torch.manual_seed(0)
    model = build_detector(name, backbone, args.num_classes, input_size=size, channels_last=channels_last, **opts)
    freeze_backbone_stages(model, backbone, frozen)
    gen = torch.Generator().manual_seed(0)
    images, boxes, labels = synthetic_batch(args.batch, size, args.num_classes, gen, args.crowded)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    views = [(i, False) for i in range(args.batch)]
    cache = FeatureCache(2**40)
    if cached:  # every view already cached: the backbone is looked up, never run
        cache.features(model, images, views)

    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return model.forward_features(cache.features(model, x, views), (size, size)) if cached else model(x)

    original = det_module.assign  # every detector assigns through it (Detector.assign)
    timer = Timer(original)
    det_module.assign = timer
    try:
        model.train()
        keep_frozen_bn_eval(model)
        train_times = []
        for i in range(args.warmup + args.iters):
            timer.total = 0.0 if i == args.warmup else timer.total
            t = time.perf_counter()
            out = model.loss(forward(images), boxes, labels, args.strategy)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            if i >= args.warmup:
                train_times.append(time.perf_counter() - t)
        assign_share = timer.total / sum(train_times)
    finally:
        det_module.assign = original

    model.eval()
    infer_times = []
    with torch.no_grad():
        for i in range(args.warmup + args.iters):
            t = time.perf_counter()
            model.predict(model(images))
            if i >= args.warmup:
                infer_times.append(time.perf_counter() - t)
    train_step = sorted(train_times)[len(train_times) // 2]
    infer_step = sorted(infer_times)[len(infer_times) // 2]
    return {
        "model": label,
        "channels_last": "on" if channels_last else "off",
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "anchors": model.priors().num,
        "train_ips": args.batch / train_step,
        "infer_ips": args.batch / infer_step,
        "assign_share": assign_share,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="name:backbone, 'light' or 'canonical'")
    p.add_argument("--channels-last", choices=("both", "on", "off"), default="both")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--iters", type=int, default=3, help="timed iterations (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    p.add_argument("--num-classes", type=int, default=20)
    p.add_argument("--strategy", default="mutual_guidance")
    p.add_argument("--crowded", action="store_true",
                   help="100-300 small objects (4-16 px) per image instead of 4: the assignment share on crowded "
                        "data")  # fmt: skip
    p.add_argument("--dense-assign", action="store_true",
                   help="assign with the dense GT chunks only (mgdet.assign.sparse.WINDOWS = False), the path before "
                        "the anchor-grid windows: compare the assignment share with and without")  # fmt: skip
    args = p.parse_args()
    if args.dense_assign:
        sparse.WINDOWS = False
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.channels_last]
    rows = [bench(spec, cl, args) for spec in args.models for cl in modes]
    print(
        f"CPU: {machine_description()}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; batch {args.batch}, input {args.size} px (recipe rows: their own), "
        f"strategy {args.strategy}, {'crowded: 100-300 objects' if args.crowded else '4 objects'} per image, "
        f"median of {args.iters} iterations after {args.warmup} warm-up"
        f"{'; dense assignment (no windows)' if args.dense_assign else ''}\n"
    )
    print("| model | channels_last | params (M) | anchors | train img/s | vs first | infer img/s | assign share |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['train_ips'] / rows[0]['train_ips']:.2f}x"
        print(
            f"| {r['model']} | {r['channels_last']} | {r['params_m']:.1f} | {r['anchors']} | "
            f"{r['train_ips']:.2f} | {ratio} | {r['infer_ips']:.2f} | {100 * r['assign_share']:.1f}% |"
        )


if __name__ == "__main__":
    main()

"""CPU inference speed of the deployment backends: torch eager, torch channels_last + inference_mode, and
onnxruntime on the exported file, plus the time of the shared numpy post-processing (top-k + class-aware
NMS) next to ``Detector.predict``. Prints a markdown table; ratios are vs torch eager in the same run.

    .venv/bin/python benchmarks/inference_speed.py --models r18 light --batches 1 8 --threads 2

All backends compute the same tensors (``mgdet.export.ScoresAndBoxes``: network + sigmoid + box decoding);
iterations are interleaved round-robin across backends so that load from other processes hits all of
them alike; the median per backend is reported.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgdet.deploy import OnnxDetector, TorchDetector
from mgdet.export import ScoresAndBoxes, export_onnx
from mgdet.models import build_detector
from mgdet.postprocess import PostProcessParams, postprocess

#: model presets: (label, name, backbone, options)
MODELS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "r18": ("RetinaNet-R18", "retinanet", "resnet18", {}),
    "light": ("RetinaNet-MobileNetV2 w64 (light)", "retinanet", "mobilenet_v2", {"neck_width": 64, "head_width": 64}),
}


def _time(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_model(key: str, args: argparse.Namespace, workdir: Path) -> list[tuple]:
    label, name, backbone, opts = MODELS[key]
    torch.manual_seed(0)
    det = build_detector(name, backbone, args.num_classes, input_size=args.size, **opts).eval()
    path = export_onnx(det, workdir / f"{key}.onnx", dynamic_batch=True)
    eager = ScoresAndBoxes(det).eval()
    fast = TorchDetector(copy.deepcopy(det), channels_last=True)
    ort = OnnxDetector(path, num_threads=args.threads)
    params = PostProcessParams()  # the paper's values: score 0.005, top-1000, NMS 0.5, 300 per image
    pp = (params.score_thresh, params.nms_iou, params.max_det, params.pre_nms_topk)
    rows = []
    for bsz in args.batches:
        batch = np.random.default_rng(0).random((bsz, 3, args.size, args.size), dtype=np.float32)
        x = torch.from_numpy(batch)

        def run_eager(x: torch.Tensor = x) -> Any:
            with torch.no_grad():
                return eager(x)

        runs: dict[str, Callable[[], Any]] = {
            "torch eager": run_eager,
            "torch channels_last + inference_mode": lambda b=batch: fast.forward(b),
            "onnxruntime": lambda b=batch: ort.forward(b),
        }
        times: dict[str, list[float]] = {k: [] for k in runs}
        for i in range(args.warmup + args.iters):
            for k, fn in runs.items():
                t = _time(fn)
                if i >= args.warmup:
                    times[k].append(t)
        s_ref, b_ref = (t.numpy() for t in run_eager())
        s_ort, b_ort = ort.forward(batch)
        diff = max(float(np.abs(s_ref - s_ort).max()), float(np.abs(b_ref - b_ort).max()) / args.size)
        with torch.no_grad():
            raw = det(x)
        post_np = statistics.median(
            _time(lambda s=s_ort, b=b_ort: postprocess(s, b, params)) for _ in range(args.iters)
        )
        post_torch = statistics.median(_time(lambda r=raw: det.predict(r, *pp)) for _ in range(args.iters))
        base = statistics.median(times["torch eager"])
        for k, ts in times.items():
            med = statistics.median(ts)
            rows.append((label, bsz, k, bsz / med, med * 1e3, base / med, ""))
        rows.append((label, bsz, "post: numpy postprocess (shared)", float("nan"), post_np * 1e3, float("nan"),
                     f"{post_np / (statistics.median(times['onnxruntime']) + post_np):.0%} of onnx total"))  # fmt: skip
        rows.append((label, bsz, "post: Detector.predict (torch)", float("nan"), post_torch * 1e3, float("nan"),
                     f"max abs diff onnx vs torch {diff:.1e}"))  # fmt: skip
        print(f"done: {label} batch {bsz}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models to time")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8], help="batch sizes")
    p.add_argument("--size", type=int, default=320, help="input size")
    p.add_argument("--num-classes", type=int, default=20, help="classes (VOC: 20)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads, torch and ORT")
    p.add_argument("--iters", type=int, default=7, help="timed iterations per backend")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per backend")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            rows += bench_model(key, args, Path(tmp))
    import onnxruntime

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"\nCPU: {platform.machine()} ({os.cpu_count()} cores), torch {torch.__version__}, onnxruntime "
          f"{onnxruntime.__version__}, {args.threads} threads; {args.size}x{args.size}, {args.num_classes} classes, "
          f"random weights; median of {args.iters} interleaved iterations after {args.warmup} warm-up; "
          f"load average at the end {', '.join(f'{v:.1f}' for v in load)}\n")  # fmt: skip
    print("| model | batch | backend | images/s | ms / batch | vs torch eager | note |")
    print("|---|---|---|---|---|---|---|")
    for label, bsz, backend, ips, ms, ratio, note in rows:
        ips_s = "" if np.isnan(ips) else f"{ips:.2f}"
        ratio_s = "" if np.isnan(ratio) else f"{ratio:.2f}x"
        print(f"| {label} | {bsz} | {backend} | {ips_s} | {ms:.1f} | {ratio_s} | {note} |")


if __name__ == "__main__":
    main()

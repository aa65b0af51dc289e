"""ONNX export and the shared deployment path: onnxruntime equals PyTorch for every detector family,
the numpy NMS equals mgdet.nms, and ``mgdet export`` + ``mgdet detect --backend onnx`` work end to end."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from mgdet.deploy import (  # noqa: E402
    OnnxDetector,
    PostProcessParams,
    TorchDetector,
    batched_nms_np,
    postprocess,
    preprocess,
)
from mgdet.export import ScoresAndBoxes, export_onnx, read_metadata  # noqa: E402
from mgdet.models import build_detector  # noqa: E402
from mgdet.nms import batched_nms  # noqa: E402

SIZE = 96
NAMES = ["circle", "square", "triangle"]
PARAMS = PostProcessParams(score_thresh=0.4, nms_iou=0.5, max_det=100, pre_nms_topk=1000)
FAMILIES = {
    "fssd": ("fssd", "resnet18", {}),
    "retinanet": ("retinanet", "mobilenet_v2", {}),
    "retinanet_canonical": ("retinanet", "resnet18", {"canonical": True}),
    "rfbnet": ("rfbnet", "vgg16", {}),
    "fcos": ("fcos", "resnet18", {}),
}


def tiny_detector(name: str, backbone: str, opts: dict, seed: int = 0) -> nn.Module:
    """A width-16 detector whose random prediction convs are rescaled so that every output has a spread
    of values (logit std ~1, class bias -2: a few percent of the scores pass 0.5, none saturate)."""
    torch.manual_seed(seed)
    det = build_detector(name, backbone, len(NAMES), input_size=SIZE, neck_width=16, **opts).eval()
    preds = {n: m for n, m in det.named_modules() if ".preds" in n and isinstance(m, nn.Conv2d)}
    stds: dict[str, float] = {}

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            stds[name] = max(stds.get(name, 0.0), float(output.std()))  # shared heads: every level

        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in preds.items()]
    with torch.no_grad():
        for m in preds.values():
            nn.init.normal_(m.weight, std=0.1)
            nn.init.zeros_(m.bias)
        det(torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)))
        for h in hooks:
            h.remove()
        for n, m in preds.items():
            target = 1.0 if n.endswith("cls_logits") else 0.5
            m.weight.mul_(target / max(stds[n], 1e-12))
            if n.endswith("cls_logits"):
                m.bias.fill_(-2.0)
    return det


def test_numpy_nms_equals_mgdet_nms() -> None:
    gen = torch.Generator().manual_seed(0)
    for seed in range(20):
        n = int(torch.randint(1, 300, (1,), generator=gen))
        xy = torch.rand(n, 2, generator=gen) * 100
        boxes = torch.cat((xy, xy + torch.rand(n, 2, generator=gen) * 40 + 1), 1)
        scores = torch.rand(n, generator=gen)
        if seed % 4 == 0:  # exact ties and duplicates are decided the same way
            scores = (scores * 8).round() / 8
            boxes[: n // 3] = boxes[0]
        labels = torch.randint(0, 4, (n,), generator=gen)
        for thr in (0.3, 0.5, 0.7):
            ref = batched_nms(boxes, scores, labels, thr).numpy()
            got = batched_nms_np(boxes.numpy(), scores.numpy(), labels.numpy(), thr)
            np.testing.assert_array_equal(got, ref)


def test_postprocess_batched_equals_per_image() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((3, 200, 4), dtype=np.float32)  # [B, A, C]
    xy = rng.random((3, 200, 2), dtype=np.float32) * 80
    boxes = np.concatenate([xy, xy + rng.random((3, 200, 2), dtype=np.float32) * 30 + 1], -1)  # [B, A, 4]
    scores[2] *= 0.1  # an image with no detection above the threshold
    p = PostProcessParams(score_thresh=0.5, nms_iou=0.5, max_det=20, pre_nms_topk=300)
    batched = postprocess(scores, boxes, p)
    assert len(batched[2]["scores"]) == 0
    for i in range(3):
        single = postprocess(scores[i : i + 1], boxes[i : i + 1], p)[0]
        for k in ("boxes", "scores", "labels"):
            np.testing.assert_array_equal(batched[i][k], single[k])
        assert len(single["scores"]) <= 20 and np.all(np.diff(single["scores"]) <= 0)


@pytest.fixture(scope="module", params=list(FAMILIES))
def exported(request, tmp_path_factory) -> tuple[str, nn.Module, Path]:
    name, backbone, opts = FAMILIES[request.param]
    det = tiny_detector(name, backbone, opts)
    path = export_onnx(det, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx", class_names=NAMES,
                       params=PARAMS, dynamic_batch=True)  # fmt: skip
    return request.param, det, path


def test_onnx_matches_torch(exported) -> None:
    family, det, path = exported
    meta = read_metadata(path)
    assert meta["class_names"] == NAMES and meta["postprocess"]["score_thresh"] == PARAMS.score_thresh
    assert meta["input_size"] == [SIZE, SIZE] and meta["model_config"]["name"] == FAMILIES[family][0]
    onnx_det = OnnxDetector(path, num_threads=2)
    assert onnx_det.params == PARAMS and onnx_det.class_names == NAMES
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((80, 120), (96, 96), (150, 70))]
    batch, scales = preprocess(images, (SIZE, SIZE))  # batch 3: the exported batch axis is dynamic
    scores, boxes = onnx_det.forward(batch)
    with torch.no_grad():
        x = torch.from_numpy(batch)
        ref_s, ref_b = (t.numpy() for t in ScoresAndBoxes(det)(x))
        ref = det.predict(det(x), PARAMS.score_thresh, PARAMS.nms_iou, PARAMS.max_det, PARAMS.pre_nms_topk)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(boxes, ref_b, rtol=1e-3, atol=1e-3)
    # ONNX + numpy post-processing keeps the same detections as Detector.predict
    got = postprocess(scores, boxes, PARAMS)
    assert sum(len(g["scores"]) for g in got) > 10, "the test model should produce detections"
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g["labels"], r["labels"].numpy())
        np.testing.assert_allclose(g["boxes"], r["boxes"].numpy(), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(g["scores"], r["scores"].numpy(), rtol=1e-3, atol=1e-6)
    # the two backends of mgdet.deploy agree in original-image pixels
    tdet = TorchDetector(det, PARAMS, NAMES).detect(images)
    for g, t, s in zip(onnx_det.detect(images), tdet, scales):
        np.testing.assert_array_equal(g["labels"], t["labels"])
        np.testing.assert_allclose(g["boxes"], t["boxes"], rtol=1e-3, atol=1e-3 / s.min())


def test_cli_export_and_detect_onnx(tmp_path, capsys) -> None:
    import mgdet
    from mgdet.cli import main
    from mgdet.engine.checkpoint import save_checkpoint

    det = tiny_detector("retinanet", "mobilenet_v2", {}, seed=1)
    ckpt = tmp_path / "tiny.pth"
    save_checkpoint({
        "model": det.state_dict(), "model_config": det.config, "class_names": NAMES,
        "config": {"eval": {"score_thresh": 0.5, "max_det": 50}}, "epoch": 1, "iteration": 10,
        "mgdet_version": mgdet.__version__,
    }, ckpt)  # fmt: skip
    onnx_file = tmp_path / "tiny.onnx"
    assert main(["export", str(ckpt), "--onnx", str(onnx_file), "--dynamic-batch", "--opset", "17"]) == 0
    assert "onnx.checker passed" in capsys.readouterr().out
    assert read_metadata(onnx_file)["postprocess"]["max_det"] == 50

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(2)
    for i, (h, w) in enumerate(((60, 90), (96, 96), (120, 64))):
        cv2.imwrite(str(images / f"im{i}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    common = ["--score-thresh", "0.5", "--max-det", "50", "--batch-size", "2", "--no-progress"]
    assert main(["detect", str(onnx_file), str(images), "--out", str(tmp_path / "onnx"), "--backend", "onnx",
                 *common]) == 0  # fmt: skip
    assert main(["detect", str(ckpt), str(images), "--out", str(tmp_path / "torch"), *common]) == 0
    got = json.loads((tmp_path / "onnx" / "detections.json").read_text())
    ref = json.loads((tmp_path / "torch" / "detections.json").read_text())
    assert [Path(r["file"]).name for r in got] == ["im0.png", "im1.png", "im2.png"]
    assert sum(len(r["detections"]) for r in got) > 0
    for g, r in zip(got, ref):
        assert [d["label"] for d in g["detections"]] == [d["label"] for d in r["detections"]]
        np.testing.assert_allclose([d["bbox_xyxy"] for d in g["detections"]],
                                   [d["bbox_xyxy"] for d in r["detections"]], atol=0.05)  # fmt: skip
    coco = json.loads((tmp_path / "onnx" / "detections_coco.json").read_text())
    assert len(coco) == sum(len(r["detections"]) for r in got)
    assert {"image_id", "category_id", "bbox", "score"} <= set(coco[0])
    assert all((tmp_path / "onnx" / f"im{i}.jpg").is_file() for i in range(3))

"""Training faults: broken images found before training, non-finite steps, 500 GT boxes in one image."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from conftest import tiny_config

from mgdet.cli import main
from mgdet.engine.config import from_dict
from mgdet.engine.train import TrainingError, train
from mgdet.models.detector import Detector


def test_broken_image_is_found_before_training(tiny_dataset, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    victim = sorted((root / "JPEGImages").glob("train_*.jpg"))[3]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    cfg = tiny_config(root, tmp_path / "run", epochs=1, max_iters=1, eval_interval=0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--no-progress", "--no-tensorboard"]) == 2
    err = capsys.readouterr().err
    assert victim.name in err and "broken image" in err and "data.on_error=skip" in err
    assert not (tmp_path / "run" / "last.pth").exists()  # refused before any step
    assert main(["train", str(path), "data.on_error=skip", "--no-progress", "--no-tensorboard"]) == 0
    assert "skipped 1 broken image" in capsys.readouterr().out


def _history(run):
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


def test_non_finite_steps_are_skipped_then_stop(tiny_dataset, tmp_path, monkeypatch):
    real = Detector.loss
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:  # the second step returns NaN
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(Detector, "loss", flaky)
    cfg = from_dict(tiny_config(tiny_dataset, tmp_path / "a", epochs=1, eval_interval=0))
    said: list[str] = []
    result = train(cfg, progress=False, tensorboard=False, evaluate_at_end=False, log=said.append)
    rows = _history(tmp_path / "a")
    assert rows[0]["skipped_steps"] == "1" and rows[0]["loss"] != "nan"
    assert result.checkpoint is not None
    assert f"skipped 1 of {calls['n']} step(s) with a non-finite loss" in " ".join(said)

    def always_nan(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        out["loss"] = out["loss"] * float("inf")
        return out

    monkeypatch.setattr(Detector, "loss", always_nan)
    cfg = from_dict(tiny_config(tiny_dataset, tmp_path / "b", epochs=3, max_bad_steps=2, eval_interval=0))
    with pytest.raises(TrainingError, match="non-finite steps in a row.*no checkpoint was written"):
        train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)


def test_a_diverged_run_never_writes_non_finite_weights_and_they_are_refused(tiny_dataset, tmp_path, capsys):
    """SGD at lr 1e30 blows the weights up within a step: the run stops naming the step and writes no
    checkpoint; a checkpoint holding NaN weights (crafted) is refused by eval (issue 22, item 10)."""
    cfg = from_dict(tiny_config(tiny_dataset, tmp_path / "run", epochs=1, eval_interval=0, lr=1e30,
                                max_bad_steps=100))  # fmt: skip
    with pytest.raises(TrainingError, match=r"NaN or infinite values after step \d+ .*last.pth was not written"):
        train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
    assert not (tmp_path / "run" / "last.pth").exists()

    from mgdet.engine.checkpoint import load_checkpoint, save_checkpoint

    good = from_dict(tiny_config(tiny_dataset, tmp_path / "ok", epochs=1, max_iters=1, eval_interval=0))
    train(good, progress=False, tensorboard=False, evaluate_at_end=False)
    state = load_checkpoint(tmp_path / "ok" / "last.pth")
    key = next(k for k, v in state["model"].items() if k.startswith("head.") and v.is_floating_point())
    state["model"][key][...] = float("nan")
    save_checkpoint(state, tmp_path / "nan.pth")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "nan.pth"), "--out", str(tmp_path / "ev"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "hold NaN or infinite values" in err and key in err and not (tmp_path / "ev").exists()


def test_500_gt_boxes_train_step_memory_bound():
    """One image with 500 GT boxes on the 320-px canonical RetinaNet anchor set (19,206 anchors), Mutual
    Guidance: forward + assignment + loss + backward stays under 2.5 GiB peak RSS (the [B, G, A]
    criterion matrices are 500 x 19,206 floats = 38 MB each)."""
    code = textwrap.dedent("""
        import resource, torch
        from mgdet.models import build_detector
        torch.manual_seed(0)
        det = build_detector("retinanet", "mobilenet_v2", 20, 320, canonical=True, neck_width=16, head_width=16,
                             head_depth=1)
        xy = torch.rand(1, 500, 2) * 280
        gt = torch.cat([xy, xy + 8 + torch.rand(1, 500, 2) * 32], -1).clamp(max=320)
        labels = torch.randint(0, 20, (1, 500))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = det(torch.rand(1, 3, 320, 320))
        losses = det.loss(out, gt, labels, "mutual_guidance")
        losses["loss"].backward()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(det.priors().num, int(losses["num_cls_pos"]), int(losses["num_reg_pos"]), before, peak)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    anchors, n_cls, n_reg, before, peak = map(int, proc.stdout.split())
    assert anchors == 19206
    assert n_cls >= 400 and n_reg >= 400  # nearly every GT gets positives
    assert peak < 2.5 * 1024 * 1024  # KiB
    assert torch.isfinite(torch.tensor(float(n_cls)))


def _fail_to_decode(monkeypatch, victim_name: str) -> None:
    """Images pass the header scan, but ``victim_name`` fails when its pixels are decoded (mid-run)."""
    import mgdet.data.records as records
    from mgdet.data import DatasetError

    real = records.read_image

    def read(path, *args, **kwargs):
        if path.name == victim_name:
            raise DatasetError("JPEG data is corrupt after the header", path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(records, "read_image", read)


@pytest.mark.parametrize("on_error", ["skip", "raise"])
def test_decode_failure_mid_run_honours_on_error(tiny_dataset, tmp_path, monkeypatch, on_error):
    from mgdet.data import DatasetError
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.checkpoint import load_detector
    from mgdet.engine.config import EvalConfig
    from mgdet.engine.inference import evaluate_model

    victim = sorted((tiny_dataset / "JPEGImages").glob("train_*.jpg"))[2].name
    val_victim = sorted((tiny_dataset / "JPEGImages").glob("val_*.jpg"))[1].name
    _fail_to_decode(monkeypatch, victim)
    cfg = from_dict(tiny_config(tiny_dataset, tmp_path / "run", epochs=1, eval_interval=0))
    cfg.data.on_error = on_error
    if on_error == "raise":
        with pytest.raises(DatasetError, match=victim):
            train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
        return
    result = train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
    assert len(result.failed_images) == 1 and victim in result.failed_images[0]
    assert len(result.history) == 1 and result.checkpoint is not None  # the epoch finished without it

    # evaluation leaves the image out of detections and ground truth alike
    _fail_to_decode(monkeypatch, val_victim)
    det, _ = load_detector(result.checkpoint)
    val = build_dataset(cfg.data, train=False, class_names=None)
    res = evaluate_model(det, val, EvalConfig(batch_size=4), torch.device("cpu"), progress=False)
    assert len(res.skipped_images) == 1 and val_victim in res.skipped_images[0]
    gone = {int(r.image_id) for r in val.records if r.path.name == val_victim}
    assert not any(d["image_id"] in gone for d in res.coco_results)


def test_a_data_loader_workers_error_is_one_line_naming_the_file(tiny_dataset, tmp_path, capsys):
    """An image that fails to decode in a loader worker used to print the worker's traceback inside the one-line
    error (issue 22, item 14)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    victim = data / "JPEGImages" / "train_000003.jpg"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    cfg = tiny_config(data, tmp_path / "run", epochs=1, eval_interval=0)
    cfg["data"].update(num_workers=1, check_images=False)  # found only when the worker decodes it
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--no-progress", "--no-tensorboard"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and 'File "' not in err
    assert "train_000003.jpg: JPEG is truncated" in err and "data loader worker" in err

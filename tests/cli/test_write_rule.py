"""The write rule: no verb writes over its input or an earlier result unless asked (--resume, --overwrite)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config

from mgdet.cli import main


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (or of ``root`` itself)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _rc(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


@pytest.fixture
def photos(tmp_path: Path, tiny_dataset: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted((tiny_dataset / "JPEGImages").glob("val_*.jpg"))[:2]:
        shutil.copy(p, folder / p.name)
    return folder


VERBS = {
    "detect into the image folder": lambda c, d, p: ["detect", str(c), str(p), "--out", str(p)],
    "detect into a sub-folder of the images": lambda c, d, p: ["detect", str(c), str(p), "--out", str(p / "out")],
    "detect beside an image file": lambda c, d, p: ["detect", str(c), str(next(p.glob("*.jpg"))), "--out", str(p)],
    "eval into the dataset": lambda c, d, p: ["eval", str(c), "--data", str(d), "--out", str(d)],
    "export over the checkpoint": lambda c, d, p: ["export", str(c), "--onnx", str(c)],
    "generate over a dataset": lambda c, d, p: ["data", "generate", "--out", str(d), "--size", "1"],
    "generate --overwrite over a dataset": lambda c, d, p: ["data", "generate", "--out", str(d), "--overwrite"],
}


@pytest.mark.parametrize("case", list(VERBS))
def test_output_pointed_at_input_leaves_it_unchanged(case, tmp_path, tiny_checkpoint, tiny_dataset, photos, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    (data / "benchmark.json").unlink()  # a user's dataset, not one mgdet generated
    ckpt = tmp_path / "run" / "last.pth"
    ckpt.parent.mkdir()
    shutil.copy(tiny_checkpoint, ckpt)
    before = {**_digest(data), **_digest(ckpt), **_digest(photos)}
    argv = VERBS[case](ckpt, data, photos)
    assert _rc([*argv, "--no-progress"] if argv[0] in ("detect", "eval") else argv) == 2
    assert {**_digest(data), **_digest(ckpt), **_digest(photos)} == before
    assert "Traceback" not in capsys.readouterr().err


def test_train_refuses_a_run_folder_with_a_checkpoint(tmp_path, tiny_dataset, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pth").write_bytes(b"earlier result")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_dataset, run)))
    assert main(["train", str(cfg), "--no-progress", "--no-tensorboard"]) == 2
    assert "--resume auto" in capsys.readouterr().err
    assert (run / "last.pth").read_bytes() == b"earlier result" and not (run / "config.yaml").exists()


def test_train_refuses_a_run_that_saved_no_checkpoint_unless_resume_auto(tmp_path, tiny_dataset, capsys):
    """config.yaml / history.csv without a checkpoint used to be overwritten (issue 22, item 3)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("earlier config\n")
    (run / "history.csv").write_text("earlier history\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_dataset, run, epochs=1, max_iters=1, eval_interval=0)))
    assert main(["train", str(cfg), "--no-progress", "--no-tensorboard"]) == 2
    err = capsys.readouterr().err
    assert "history.csv, config.yaml" in err and "saved no checkpoint" in err and "--resume auto" in err
    assert (run / "config.yaml").read_text() == "earlier config\n"
    assert (run / "history.csv").read_text() == "earlier history\n"
    # --resume auto finds no checkpoint: the unfinished run starts over
    assert main(["train", str(cfg), "--resume", "auto", "--no-progress", "--no-tensorboard"]) == 0
    assert (run / "last.pth").is_file() and (run / "config.yaml").read_text() != "earlier config\n"


def test_failed_resume_keeps_the_run_config(tmp_path, tiny_checkpoint, tiny_dataset, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_checkpoint, run / "last.pth")
    (run / "config.yaml").write_text("original\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_dataset, run)))
    rc = main(["train", str(cfg), "model.width=32", "--resume", "auto", "--no-progress", "--no-tensorboard"])
    err = capsys.readouterr().err
    assert rc == 2 and "neck_width: checkpoint 16, config 32" in err
    assert (run / "config.yaml").read_text() == "original\n"


def test_eval_refuses_another_class_order(tmp_path, tiny_checkpoint, tiny_dataset, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    names = (data / "classes.txt").read_text().split()
    (data / "classes.txt").write_text("\n".join(reversed(names)) + "\n")
    rc = main(["eval", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path / "ev"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and str(names) in err and str(list(reversed(names))) in err
    assert not (tmp_path / "ev").exists()
    # another number of classes (one more): refused the same way, one line, no traceback
    (data / "classes.txt").write_text("\n".join([*names, "extra"]) + "\n")
    rc = main(["eval", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path / "ev"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "'extra'" in err and len(err.strip().splitlines()) == 1


def test_eval_class_map_scores_the_same_classes_in_another_order(tmp_path, tiny_checkpoint, tiny_dataset, capsys):
    """--class-map same-names reads the dataset with the checkpoint's class order: the metrics equal those on
    the dataset the model was trained on; renames map a differently named class onto the checkpoint's."""
    import json

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    names = (data / "classes.txt").read_text().split()
    (data / "classes.txt").write_text("\n".join(reversed(names)) + "\n")
    common = ["--no-progress", "--score-thresh", "0.001"]
    assert (
        main(["eval", str(tiny_checkpoint), "--data", str(tiny_dataset), "--out", str(tmp_path / "ref"), *common]) == 0
    )
    assert main(["eval", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path / "mapped"),
                 "--class-map", "same-names", *common]) == 0  # fmt: skip
    ref = json.loads((tmp_path / "ref" / "metrics.json").read_text())["metrics"]
    got = json.loads((tmp_path / "mapped" / "metrics.json").read_text())["metrics"]
    assert got == ref
    # a class renamed in the dataset: refused without a map, scored as the checkpoint's class with one
    for xml in (data / "Annotations").glob("*.xml"):
        xml.write_text(xml.read_text().replace(f"<name>{names[0]}</name>", "<name>renamed</name>"))
    (data / "classes.txt").write_text("\n".join(["renamed", *names[1:]]) + "\n")
    assert main(["eval", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path / "x"), *common]) == 2
    assert main(["eval", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path / "renamed"),
                 "--class-map", f"renamed={names[0]}", *common]) == 0  # fmt: skip
    got = json.loads((tmp_path / "renamed" / "metrics.json").read_text())["metrics"]
    assert got == ref
    capsys.readouterr()
    assert main(["eval", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path / "y"),
                 "--class-map", "renamed=nosuch", *common]) == 2  # fmt: skip
    assert "nosuch" in capsys.readouterr().err


def test_detect_keeps_earlier_results_and_names_collisions_apart(tmp_path, tiny_checkpoint, photos, capsys):
    other = tmp_path / "other"
    other.mkdir()
    first = next(photos.glob("*.jpg"))
    shutil.copy(first, other / first.name)  # same stem in two folders
    out = tmp_path / "out"
    argv = ["detect", str(tiny_checkpoint), str(photos), str(other), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert len(list(out.glob("*.jpg"))) == 3
    before = _digest(out)
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert _digest(out) == before
    (out / "mine.jpg").write_bytes(b"x")
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "mine.jpg").read_bytes() == b"x"


# ------------------------------------------------------------------------------- one writer per folder (lock)
def test_folder_lock_refuses_a_live_holder_and_takes_over_a_dead_ones(tmp_path: Path) -> None:
    """Issue 22, item 1: the lock names its holder; a lock of a process that is gone is taken over."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from mgdet.errors import OutputError
    from mgdet.outputs import LOCK_NAME, folder_lock

    out = tmp_path / "out"
    with folder_lock(out, "detect") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        busy = rf"{out} is in use by mgdet detect \(pid {os.getpid()} on "
        with pytest.raises(OutputError, match=busy), folder_lock(out, "train"):
            pass
    assert not (out / LOCK_NAME).exists()  # released
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {"pid": holder.pid, "host": socket.gethostname(), "verb": "train", "since": "now"}
        (out / LOCK_NAME).write_text(json.dumps(record))
        busy = rf"in use by mgdet train \(pid {holder.pid} .*remove .*{LOCK_NAME}"
        with pytest.raises(OutputError, match=busy), folder_lock(out, "eval"):
            pass
    finally:
        holder.kill()
        holder.wait()
    said: list[str] = []
    with folder_lock(out, "eval", said.append):  # the holder is gone: its lock is stale
        pass
    assert said == [f"{out}: taking over the lock of mgdet train (pid {holder.pid}, no longer running)"]
    (out / LOCK_NAME).write_text("")  # being written by another process (or damaged): refused, never removed
    with pytest.raises(OutputError, match="being written or damaged"), folder_lock(out, "eval"):
        pass
    assert (out / LOCK_NAME).exists()


def test_two_trainings_into_one_folder_the_second_is_refused(tiny_dataset: Path, tmp_path: Path) -> None:
    """Two real ``mgdet train`` processes, one output folder: the second exits 2 in one line naming the first,
    and the first finishes with its files intact."""
    import signal
    import subprocess
    import sys
    import time

    from mgdet.outputs import LOCK_NAME

    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_dataset, run, epochs=40, eval_interval=0)))
    cmd = [sys.executable, "-m", "mgdet", "train", str(cfg), "--no-progress", "--no-tensorboard"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / LOCK_NAME).exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert (run / LOCK_NAME).exists(), first.communicate()
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"is in use by mgdet train (pid {first.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C: the run writes its checkpoint and stops
        first.communicate(timeout=120)
    assert not (run / LOCK_NAME).exists()  # released when the first stopped


def test_resuming_another_folders_checkpoint_never_replaces_a_run(tmp_path, tiny_dataset, capsys):
    """``train C output_dir=runs/A --resume runs/B/last.pth`` used to replace A's files (issue 22, item 2)."""
    b = tmp_path / "B"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_dataset, b, epochs=2, max_iters=1, eval_interval=0)))
    assert main(["train", str(cfg), "--no-progress", "--no-tensorboard"]) == 0
    a = tmp_path / "A"
    a.mkdir()
    (a / "last.pth").write_bytes(b"A's checkpoint")
    (a / "history.csv").write_text("A's history\n")
    capsys.readouterr()
    rc = main(["train", str(cfg), f"output_dir={a}", "--resume", str(b / "last.pth"), "--no-progress",
               "--no-tensorboard"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and f"continues the run in {b}" in err and "last.pth, history.csv" in err
    assert (a / "last.pth").read_bytes() == b"A's checkpoint" and (a / "history.csv").read_text() == "A's history\n"
    # into a new folder (or the checkpoint's own) it goes on
    new = tmp_path / "new"
    rc = main(["train", str(cfg), f"output_dir={new}", "--resume", str(b / "last.pth"), "--no-progress",
               "--no-tensorboard"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert (new / "last.pth").is_file()


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in, even as root: immutable (chattr +i) when the file system
    allows it, else read-only permissions for a non-root user; skipped when neither can be arranged."""
    import os
    import subprocess

    folder = tmp_path / "locked"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        if os.geteuid() == 0:
            pytest.skip("no way to make a folder unwritable for root here")
        folder.chmod(0o555)
    try:
        (folder / "probe").write_bytes(b"")
    except OSError:
        return folder
    pytest.skip("the folder stayed writable")


@pytest.fixture
def locked(tmp_path: Path):
    import subprocess

    folder = _unwritable_folder(tmp_path)
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


@pytest.mark.parametrize("verb", ["export", "visualize detections", "visualize assignment", "eval", "detect"])
def test_an_unwritable_output_folder_is_refused_before_the_work(verb, locked, tiny_checkpoint, tiny_dataset,
                                                                  photos, monkeypatch, capsys):  # fmt: skip
    """An unwritable output folder used to be found only when the results were written (issue 22, item 14)."""
    import mgdet.engine.checkpoint as checkpoint
    import mgdet.engine.inference as inference
    import mgdet.export as export

    def no_work(*args, **kwargs):
        raise AssertionError("the verb started its work before checking its output folder")

    if verb.startswith("visualize"):  # loading the detector is where the figures' work starts
        monkeypatch.setattr(checkpoint, "load_detector", no_work)
    monkeypatch.setattr(export, "export_checkpoint", no_work)
    monkeypatch.setattr(inference, "evaluate_model", no_work)
    monkeypatch.setattr(inference, "detect_images", no_work)
    c, d = str(tiny_checkpoint), str(tiny_dataset)
    argv = {
        "export": ["export", c, "--onnx", str(locked / "x.onnx")],
        "visualize detections": ["visualize", "detections", c, c, "--data", d, "--out", str(locked)],
        "visualize assignment": ["visualize", "assignment", c, "--data", d, "--out", str(locked)],
        "eval": ["eval", c, "--data", d, "--out", str(locked), "--no-progress"],
        "detect": ["detect", c, str(photos), "--out", str(locked), "--no-progress"],
    }[verb]
    assert _rc(argv) == 2
    err = capsys.readouterr().err
    assert str(locked) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err

import errno
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mgdet.engine.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_roundtrip_with_rng_state(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 2, "rng": rng_state(), "config": {"a": [1, "x"]}}
    p = save_checkpoint(state, tmp_path / "ck.pth")
    expected = torch.rand(3)  # drawn after the state was captured
    loaded = load_checkpoint(p)
    set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected)
    assert loaded["epoch"] == 2 and loaded["config"] == {"a": [1, "x"]}


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused(tmp_path):
    p = tmp_path / "evil.pth"
    torch.save({"model": {}, "payload": _Evil()}, p)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(p)
    p2 = tmp_path / "evil2.pth"
    p2.write_bytes(pickle.dumps({"model": _Evil()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(p2)


def test_garbage_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00\x01 definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_checkpoint(bad)
    other = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="not an mgdet checkpoint"):
        load_checkpoint(other)


def test_interrupted_write_keeps_previous_file(tmp_path):
    """A writer killed half-way (SIGKILL after the bytes were written, before the rename) never replaces the
    good checkpoint."""
    good = save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 1}, tmp_path / "last.pth")
    code = f"""
import os, signal, torch
from mgdet.engine import checkpoint as ck
ck.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
ck.save_checkpoint({{"model": {{"w": torch.zeros(2)}}, "epoch": 2}}, r"{good}")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    state = load_checkpoint(good)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(2))


def _disk_full(monkeypatch) -> None:
    """Every checkpoint written from now on goes to /dev/full: the kernel answers ENOSPC, as on a full disk."""
    from mgdet.engine import checkpoint as ck

    def mkstemp(prefix="", suffix="", dir=None):
        return os.open("/dev/full", os.O_WRONLY), str(Path(dir) / f"{prefix}x{suffix}")

    monkeypatch.setattr(ck.tempfile, "mkstemp", mkstemp)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_keeps_the_previous_file_and_names_the_path(tmp_path, monkeypatch):
    good = save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 1}, tmp_path / "last.pth")
    _disk_full(monkeypatch)
    with pytest.raises(OSError) as info:
        save_checkpoint({"model": {"w": torch.zeros(2)}, "epoch": 2}, good)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(good)
    assert load_checkpoint(good)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]  # no temp file left behind


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_train_on_a_full_disk_is_one_line_naming_the_checkpoint(tmp_path, tiny_dataset, monkeypatch, capsys):
    import yaml
    from conftest import tiny_config

    from mgdet.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_dataset, tmp_path / "run", epochs=1, max_iters=1)))
    _disk_full(monkeypatch)
    rc = main(["train", str(cfg), "--no-progress", "--no-tensorboard"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "No space left on device" in err and ".pth" in err and "free some disk space" in err

import os
import pickle
import subprocess
import sys

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
    """A writer killed half-way (SIGKILL inside torch.save) never replaces the good checkpoint."""
    good = save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 1}, tmp_path / "last.pth")
    code = f"""
import os, signal, torch
from mgdet.engine import checkpoint as ck
real = torch.save
def dying_save(obj, f):
    f.write(b"partial bytes")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
ck.torch.save = dying_save
ck.save_checkpoint({{"model": {{"w": torch.zeros(2)}}, "epoch": 2}}, r"{good}")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    state = load_checkpoint(good)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(2))

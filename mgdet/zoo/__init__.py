"""The project's own trained detectors, shipped with the package: ``zoo:NAME`` works wherever a checkpoint
path does (``mgdet eval zoo:retinanet_mbv2_mg``), and in Python:

```python
from mgdet.zoo import load_detector, names
det = load_detector("retinanet_mbv2_mg")   # float32, eval mode; backbone from the installed ImageNet file
```

* :mod:`~mgdet.zoo.catalog` - names, manifests, the dataset fingerprint (torch-free).
* :mod:`~mgdet.zoo.store` - the weight files: half precision, sha256-checked, backbone from the ImageNet file.

Packing a finished training run into a zoo folder is :mod:`mgdet.demo.pack` (it reads the run grid's records,
so it lives with the grid; the zoo itself does not import :mod:`mgdet.demo`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mgdet.zoo.catalog import (
    DEMO_PAIR,
    PREFIX,
    ZooError,
    dataset_fingerprint,
    is_zoo_ref,
    names,
    read_manifest,
    zoo_dir,
)

__all__ = ["DEMO_PAIR", "PREFIX", "ZooError", "dataset_fingerprint", "is_zoo_ref", "load_detector", "load_state",
           "names", "read_manifest", "zoo_dir"]  # fmt: skip


def load_state(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """Zoo detector ``name`` as a checkpoint-like dict (see :func:`mgdet.zoo.store.load_state`)."""
    from mgdet.zoo.store import load_state as _load

    return _load(name, root)


def load_detector(name: str, map_location: Any = "cpu") -> Any:
    """Zoo detector ``name`` (``NAME`` or ``zoo:NAME``) as a float32 ``Detector`` in eval mode; its manifest is
    ``det.zoo_manifest``."""
    from mgdet.zoo.store import build_detector

    return build_detector(name, map_location)

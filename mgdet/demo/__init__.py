"""The shipped experiment: ``mgdet demo`` (IoU vs Mutual Guidance on the CPU benchmark, with a report) and
``mgdet reproduce`` (the paper's Table 1 ablation, resumable, mean ± std over seeds).

* :mod:`~mgdet.demo.recipe` - the CPU recipe and per-run configurations.
* :mod:`~mgdet.demo.runner` - the resumable grid of runs and the mean ± std summary.
* :mod:`~mgdet.demo.report` - tables, figures, markdown.
* :mod:`~mgdet.demo.live` - the live evaluation of the zoo's detectors (``mgdet demo``).
* :mod:`~mgdet.demo.pack` - a finished run -> a zoo detector (``mgdet zoo --pack``).
* :mod:`~mgdet.demo.pipeline` - :func:`run_demo`, :func:`run_reproduce`.
"""

from typing import Any

#: Public names and the submodule each is imported from on first use (``mgdet.demo.recipe`` must stay
#: importable without torch for the command line's help texts).
_EXPORTS = {
    "DemoResult": "pipeline", "ensure_benchmark": "pipeline", "run_demo": "pipeline", "run_reproduce": "pipeline",
    "benchmark_recipe": "recipe", "grid_config": "recipe", "write_benchmark_configs": "recipe",
    "GridResult": "runner", "RunRecord": "runner", "RunSpec": "runner", "run_grid": "runner", "summarize": "runner",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mgdet.demo' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"mgdet.demo.{_EXPORTS[name]}"), name)

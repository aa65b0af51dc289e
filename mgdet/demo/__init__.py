"""The shipped experiment: ``mgdet demo`` (IoU vs Mutual Guidance on the CPU benchmark, with a report) and
``mgdet reproduce`` (the paper's Table 1 ablation, resumable, mean ± std over seeds).

* :mod:`~mgdet.demo.recipe` - the CPU recipe and per-run configurations.
* :mod:`~mgdet.demo.runner` - the resumable grid of runs and the mean ± std summary.
* :mod:`~mgdet.demo.report` - tables, figures, markdown.
* :mod:`~mgdet.demo.pipeline` - :func:`run_demo`, :func:`run_reproduce`.
"""

from mgdet.demo.pipeline import DemoResult, ensure_benchmark, run_demo, run_reproduce
from mgdet.demo.recipe import benchmark_recipe, grid_config, write_benchmark_configs
from mgdet.demo.runner import GridResult, RunRecord, RunSpec, run_grid, summarize

__all__ = [
    "DemoResult",
    "GridResult",
    "RunRecord",
    "RunSpec",
    "benchmark_recipe",
    "ensure_benchmark",
    "grid_config",
    "run_demo",
    "run_grid",
    "run_reproduce",
    "summarize",
    "write_benchmark_configs",
]

"""The paper's figures (matplotlib, Agg backend, files only).

* :mod:`~mgdet.viz.amplification` - Fig. 3, IoU_amplified vs IoU_anchor.
* :mod:`~mgdet.viz.assignment` - Fig. 2 / 4, anchors whose label changes under L2C / C2L.
* :mod:`~mgdet.viz.detections` - Fig. 5, two detectors side by side with the ground truth.
* :mod:`~mgdet.viz.curves` - training curves from ``history.csv``, per-class PR curves.
"""

from mgdet.viz.amplification import plot_amplification, save_amplification
from mgdet.viz.assignment import (
    assignment_sets,
    assignment_table,
    detector_assignments,
    plot_assignment,
    render_assignment,
    strategy_assignments,
)
from mgdet.viz.common import save_figure
from mgdet.viz.curves import (
    plot_per_class_ap,
    plot_pr_curves,
    plot_training_curves,
    read_history,
)
from mgdet.viz.detections import plot_detections, run_detector

__all__ = [
    "assignment_sets",
    "assignment_table",
    "detector_assignments",
    "plot_amplification",
    "plot_assignment",
    "plot_detections",
    "plot_per_class_ap",
    "plot_pr_curves",
    "plot_training_curves",
    "read_history",
    "render_assignment",
    "run_detector",
    "save_amplification",
    "save_figure",
    "strategy_assignments",
]

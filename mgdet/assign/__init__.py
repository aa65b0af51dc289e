"""Label assignment: the paper's four rules (static IoU, Localize to Classify, Classify to Localize, Mutual
Guidance), ATSS and task-aligned assignment, on anchors and on FCOS points.

Modules: :mod:`~mgdet.assign.core` (result type, validation, reservation, exact top-k),
:mod:`~mgdet.assign.priors` (anchors / points with their levels), one module per rule
(:mod:`~mgdet.assign.paper`, :mod:`~mgdet.assign.fcos`, :mod:`~mgdet.assign.atss`,
:mod:`~mgdet.assign.task_aligned`), :mod:`~mgdet.assign.dispatch` (the entry point :func:`assign`) and
:mod:`~mgdet.assign.reference` (slow per-image loops for tests and benchmarks only). The list of strategies
is :mod:`mgdet.strategies`.

Outputs are index tensors: ``cls_gt[b, a]`` = GT index (positive), :data:`NEGATIVE` or :data:`IGNORED`;
``reg_gt[b, a]`` = GT index (regression sample) or :data:`NEGATIVE`; ``cls_target`` the soft classification
target of rules that have one (task-aligned), else None. Inputs are detached; no gradients.
"""

from mgdet.assign.core import IGNORED, NEGATIVE, Assignment, reserve, reserved_matrix
from mgdet.assign.dispatch import ANCHOR_RULES, POINT_RULES, assign, assign_fcos, assign_points, fcos_priors
from mgdet.assign.paper import amplified_iou
from mgdet.assign.priors import Priors, anchor_priors, layout_priors, point_priors, single_level_priors
from mgdet.strategies import PAPER_STRATEGIES, STRATEGIES, STRATEGY_TABLE, AssignParams, StrategySpec, strategy_spec

__all__ = [
    "ANCHOR_RULES",
    "IGNORED",
    "NEGATIVE",
    "PAPER_STRATEGIES",
    "POINT_RULES",
    "STRATEGIES",
    "STRATEGY_TABLE",
    "AssignParams",
    "Assignment",
    "Priors",
    "StrategySpec",
    "amplified_iou",
    "anchor_priors",
    "assign",
    "assign_fcos",
    "assign_points",
    "fcos_priors",
    "layout_priors",
    "point_priors",
    "reserve",
    "reserved_matrix",
    "single_level_priors",
    "strategy_spec",
]

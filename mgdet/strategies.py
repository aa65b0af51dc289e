"""The table of label-assignment strategies: the one place that lists them (torch-free, imports nothing).

Everything that names a strategy reads :data:`STRATEGY_TABLE`: :mod:`mgdet.assign` (validation and dispatch),
the recipe and report (:mod:`mgdet.demo`), the config generator, the CLI help and the benchmarks. The code of
each rule lives in :mod:`mgdet.assign`; a name in this table without code there fails loudly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class StrategySpec:
    """One assignment strategy, as plain data."""

    name: str  # full name: train.strategy, mgdet.assign.assign(strategy, ...)
    short: str  # file and run names: configs/benchmark/<detector>_<short>.yaml
    title: str  # row label of tables (the paper's Table 1 for its four strategies)
    label: str  # short label of difference rows and legends ("MG - IoU")
    needs_boxes: bool  # needs the decoded regressed boxes pred_boxes [B, A, 4]
    needs_scores: bool  # needs the sigmoid class scores pred_scores [B, A, C]
    in_paper: bool  # one of the four strategies of the paper's Table 1 grid
    soft_target: bool  # gives Assignment.cls_target (a soft classification target), trained with quality focal loss
    reference: str  # where the rule is published


#: Every strategy, in table order (the paper's Table 1 first).
STRATEGY_TABLE: tuple[StrategySpec, ...] = (
    StrategySpec("iou", "iou", "IoU_anchor-based", "IoU", False, False, True, False,
                 "static IoU matching (SSD / RetinaNet), the paper's baseline"),
    StrategySpec("localize_to_classify", "l2c", "Localize to Classify", "L2C", True, False, True, False,
                 "Zhang et al., ACCV 2020, Sec. 3.2"),
    StrategySpec("classify_to_localize", "c2l", "Classify to Localize", "C2L", False, True, True, False,
                 "Zhang et al., ACCV 2020, Sec. 3.3"),
    StrategySpec("mutual_guidance", "mg", "Mutual Guidance", "MG", True, True, True, False,
                 "Zhang et al., ACCV 2020, Sec. 3"),
    StrategySpec("atss", "atss", "ATSS", "ATSS", False, False, False, False,
                 "Zhang et al., CVPR 2020 (Adaptive Training Sample Selection)"),
    StrategySpec("task_aligned", "tal", "Task-aligned (TOOD)", "TAL", True, True, False, True,
                 "Feng et al., ICCV 2021 (TOOD), Sec. 3.2"),
    StrategySpec("mutual_guidance_dynamic", "mgd", "MG, the authors' later rule (dynamic k)", "MGD", True, True,
                 False, True, "zhanghengdev/MutualGuide@108b4a8 (2023), utils/box/box_utils.py mutual_match"),
)  # fmt: skip


#: How L2C ranks its candidates (``AssignParams.mg_metric``): the paper's IoU of the regressed box, or TOOD's
#: aligned metric p ** tal_alpha * IoU ** tal_beta.
L2C_METRICS: tuple[str, ...] = ("iou", "aligned")
#: Regression samples of task-aligned assignment (``AssignParams.tal_reg``): its own positives (TOOD), or the
#: paper's Classify to Localize samples (a hybrid: TOOD's classification labels, MG's regression half).
TAL_REG: tuple[str, ...] = ("tal", "c2l")
#: Regression samples of Mutual Guidance (``AssignParams.mg_reg``): the paper's Classify to Localize samples, or its
#: classification positives (one set of anchors for both tasks, as task-aligned assignment).
MG_REG: tuple[str, ...] = ("c2l", "cls")


@dataclass(frozen=True)
class AssignParams:
    """Every knob of every assignment rule, with its published default (written here once). Built once per run
    from the config's ``train`` section (same names), kept in the detector's config and passed to
    :func:`mgdet.assign.assign`."""

    pos_iou: float = 0.5  # static matching: IoU_anchor >= pos_iou is positive (the paper)
    neg_iou: float = 0.4  # below neg_iou negative, between the two ignored
    sigma: float = 2.0  # amplification of Eq. (1) of the paper, > 1
    fcos_radius: float = 1.5  # FCOS centre sampling radius, in strides
    atss_topk: int = 9  # ATSS candidates per level (Zhang et al., CVPR 2020)
    tal_topk: int = 13  # task-aligned positives per GT before conflicts (TOOD)
    tal_alpha: float = 1.0  # task-aligned metric s ** alpha * u ** beta
    tal_beta: float = 6.0
    mgd_topq: int = 15  # the authors' later MG: k = floor(sum of a GT's mgd_topq best qualities), at least 1
    # a control, not the paper: the L2C / MG positives' soft target = the IoU of their regressed box with the GT
    # (trained with the quality focal loss, as task-aligned assignment); the labels are unchanged
    mg_soft_target: bool = False
    # variants of the paper's rule (issue 25), off by default: L2C ranks its candidates by "iou" (the paper) or by
    # TOOD's "aligned" metric p ** tal_alpha * IoU ** tal_beta, with MG's counts and C2L kept
    mg_metric: str = "iou"
    # interpolation from static (0) to the paper's mutual criteria (1): L2C ranks by IoU_anchor ** (1 - lambda) *
    # criterion ** lambda, C2L amplifies with lambda * p; mg_ramp > 0 ramps lambda from 0 to mg_lambda over that
    # fraction of the training steps (the trainer sets it per step)
    mg_lambda: float = 1.0
    mg_ramp: float = 0.0
    # a hybrid (issue 25), off by default: task-aligned assignment's regression samples are its positives ("tal") or
    # the paper's Classify to Localize samples ("c2l"; classification labels and soft targets unchanged)
    tal_reg: str = "tal"
    # a variant (issue 25), off by default: Mutual Guidance's regression samples are C2L's ("c2l", the paper) or its
    # classification positives ("cls": the L2C labels guide both tasks, nothing ties regression to IoU_anchor)
    mg_reg: str = "c2l"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AssignParams:
        """The fields of ``values`` that are knobs (other keys are ignored; missing ones keep their default)."""
        names = {f.name: f.type for f in fields(cls)}
        kinds = {"int": int, "bool": bool, "float": float, "str": str}
        return cls(**{k: kinds[names[k]](v) for k, v in values.items() if k in names})

    def changed(self) -> dict[str, Any]:
        """The knobs that differ from their default (what a checkpoint stores beside the paper's three)."""
        default = AssignParams()
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)
        }

    def at_progress(self, progress: float) -> AssignParams:
        """The knobs of a training step at ``progress`` (steps done / total, in [0, 1]): ``mg_lambda`` ramped
        from 0 over the first ``mg_ramp`` of training (unchanged when ``mg_ramp`` is 0)."""
        if self.mg_ramp <= 0:
            return self
        return replace(self, mg_lambda=self.mg_lambda * min(1.0, max(progress, 0.0) / self.mg_ramp))


#: Full names of every strategy, in table order.
STRATEGIES: tuple[str, ...] = tuple(s.name for s in STRATEGY_TABLE)
#: The four strategies of the paper's Table 1 (the default grid of ``mgdet reproduce`` and configs/voc, coco).
PAPER_STRATEGIES: tuple[str, ...] = tuple(s.name for s in STRATEGY_TABLE if s.in_paper)
#: Short names, in table order.
SHORT_NAMES: tuple[str, ...] = tuple(s.short for s in STRATEGY_TABLE)


def find_strategy(name: str) -> StrategySpec | None:
    """The spec whose full or short name is ``name``, or None."""
    for spec in STRATEGY_TABLE:
        if name in (spec.name, spec.short):
            return spec
    return None


def strategy_spec(name: str) -> StrategySpec:
    """The spec of the strategy with full name ``name``; ValueError for any other name."""
    for spec in STRATEGY_TABLE:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown assignment strategy {name!r}; expected one of {', '.join(STRATEGIES)}")

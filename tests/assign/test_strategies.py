"""The strategy table is the one list of strategies, and dispatch fails loudly on a name without code."""

import pytest
import torch

from mgdet import strategies
from mgdet.assign import ANCHOR_RULES, POINT_RULES, STRATEGIES, assign, dispatch, fcos_priors
from mgdet.assign.fcos import level_ranges
from mgdet.models.fcos import generate_points
from mgdet.strategies import PAPER_STRATEGIES, STRATEGY_TABLE, StrategySpec, find_strategy, strategy_spec

GT = torch.tensor([[[0.0, 0.0, 40.0, 40.0]]])
LABELS = torch.tensor([[0]])
ANCHORS = torch.tensor([[0.0, 0.0, 40.0, 40.0], [20.0, 20.0, 60.0, 60.0]])


def test_table_lists_the_paper_four_then_atss_task_aligned_and_the_authors_later_rule():
    assert STRATEGIES == ("iou", "localize_to_classify", "classify_to_localize", "mutual_guidance", "atss",
                          "task_aligned", "mutual_guidance_dynamic")  # fmt: skip
    assert STRATEGIES[:4] == PAPER_STRATEGIES
    assert [s.short for s in STRATEGY_TABLE] == ["iou", "l2c", "c2l", "mg", "atss", "tal", "mgd"]
    for field in ("name", "short", "title", "label"):
        values = [getattr(s, field) for s in STRATEGY_TABLE]
        assert len(set(values)) == len(values), field
    assert [s.name for s in STRATEGY_TABLE if s.soft_target] == ["task_aligned", "mutual_guidance_dynamic"]
    assert find_strategy("tal") is find_strategy("task_aligned") is strategy_spec("task_aligned")
    assert find_strategy("nope") is None
    with pytest.raises(ValueError, match="unknown assignment strategy"):
        strategy_spec("tal")  # full names only


def test_every_strategy_has_code_for_anchors_and_points():
    assert set(ANCHOR_RULES) == set(POINT_RULES) == set(STRATEGIES)


def test_views_of_the_table_cover_every_strategy():
    from mgdet.demo.recipe import STRATEGY_ABBR, STRATEGY_TITLES
    from mgdet.demo.report import SHORT, STRATEGY_COLOURS

    for view in (STRATEGY_ABBR, STRATEGY_TITLES, SHORT, STRATEGY_COLOURS):
        assert list(view) == list(STRATEGIES)


def test_unknown_name_raises_for_anchors_and_points():
    with pytest.raises(ValueError, match="unknown assignment strategy"):
        assign("nope", ANCHORS, GT, LABELS)
    points, strides, ranges = generate_points((8, 16), [(4, 4), (2, 2)], level_ranges(2))
    with pytest.raises(ValueError, match="unknown assignment strategy"):
        assign("nope", fcos_priors(points, strides, ranges), GT, LABELS)


def test_a_name_in_the_table_without_code_raises(monkeypatch: pytest.MonkeyPatch):
    """A strategy added to the table but not to the dispatch never falls through to static matching."""
    extra = StrategySpec("new_rule", "new", "New rule", "NEW", False, False, False, False, "nowhere")
    monkeypatch.setattr(strategies, "STRATEGY_TABLE", (*STRATEGY_TABLE, extra))
    assert strategy_spec("new_rule") is extra
    with pytest.raises(ValueError, match="'new_rule' has no implementation for anchors"):
        assign("new_rule", ANCHORS, GT, LABELS)
    points, strides, ranges = generate_points((8, 16), [(4, 4), (2, 2)], level_ranges(2))
    with pytest.raises(ValueError, match="'new_rule' has no implementation for FCOS points"):
        assign("new_rule", fcos_priors(points, strides, ranges), GT, LABELS)
    # and a known strategy whose code is removed from the dispatch
    monkeypatch.delitem(dispatch.ANCHOR_RULES, "iou")
    with pytest.raises(ValueError, match="'iou' has no implementation for anchors"):
        assign("iou", ANCHORS, GT, LABELS)


def test_configs_and_cli_read_the_table():
    from mgdet.cli.reproduce import PAPER_SHORT
    from mgdet.engine.config import _CHOICES

    assert _CHOICES["train.strategy"] == STRATEGIES
    assert PAPER_SHORT == "iou,l2c,c2l,mg"


def test_every_rules_knob_is_reachable_from_the_config():
    """ATSS k, task-aligned k / alpha / beta and the FCOS radius used to be fixed in code (issue 23, item 2): they
    are train.* keys, reach the detector through its config, and change what it assigns."""
    import torch

    from mgdet.engine.builders import model_kwargs
    from mgdet.engine.config import from_dict
    from mgdet.models import build_detector
    from mgdet.strategies import AssignParams

    knobs = {"tal_topk": 3, "atss_topk": 4, "tal_beta": 2.0}
    cfg = from_dict({"model": {"name": "retinanet", "width": 16}, "data": {"input_size": 128}, "train": knobs})
    kw = model_kwargs(cfg, 3)
    assert {k: kw[k] for k in ("tal_topk", "atss_topk", "tal_beta")} == {"tal_topk": 3, "atss_topk": 4, "tal_beta": 2.0}
    default_kw = model_kwargs(from_dict({"model": {"name": "retinanet", "width": 16}}), 3)
    assert not set(default_kw) & {"tal_topk", "atss_topk", "tal_alpha", "tal_beta", "fcos_radius"}  # as before
    torch.manual_seed(0)
    det = build_detector(**kw)
    assert det.assign_params == AssignParams(atss_topk=4, tal_topk=3, tal_beta=2.0)
    default = build_detector(**{**kw, "tal_topk": 13, "atss_topk": 9, "tal_beta": 6.0})
    default.load_state_dict(det.state_dict())
    x = torch.rand(2, 3, 128, 128)
    gt = torch.tensor([[[10.0, 12, 70, 80], [60, 50, 120, 110]], [[30, 30, 90, 100], [0, 0, 0, 0]]])
    labels = torch.tensor([[0, 2], [1, -1]])
    for strategy in ("task_aligned", "atss"):
        a = det.loss(det(x), gt, labels, strategy)["assignment"]
        b = default.loss(default(x), gt, labels, strategy)["assignment"]
        assert (a.cls_gt >= 0).sum() < (b.cls_gt >= 0).sum()  # fewer candidates / positives per GT
    with pytest.raises(Exception, match="train.tal_topk"):
        from_dict({"train": {"tal_topk": 0}})


def test_every_assignment_knob_is_a_train_key_with_the_same_default():
    """AssignParams is the table of knobs; the config's train section mirrors it field by field (a new knob is
    one AssignParams field, the same-named TrainConfig line and the rule that reads it)."""
    from dataclasses import fields

    from mgdet.engine.config import TrainConfig
    from mgdet.strategies import AssignParams

    train = {f.name: f.default for f in fields(TrainConfig)}
    for f in fields(AssignParams):
        assert f.name in train and train[f.name] == f.default, f.name

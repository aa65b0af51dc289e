import glob

import pytest
import yaml
from conftest import load_script

from mgdet.engine.config import ConfigError, RunConfig, apply_overrides, from_dict, load_config


def test_defaults_are_the_paper_recipe():
    cfg = RunConfig()
    assert (cfg.train.lr, cfg.train.momentum, cfg.train.weight_decay) == (0.01, 0.9, 5e-4)
    assert (cfg.train.warmup_iters, cfg.train.min_lr, cfg.train.batch_size) == (500, 1e-6, 32)
    assert cfg.data.input_size == 320 and cfg.eval.nms_iou == 0.5 and cfg.eval.score_thresh == 0.005
    assert (cfg.loss.focal_alpha, cfg.loss.focal_gamma) == (0.25, 1.0)


def test_every_shipped_config_loads_and_is_up_to_date():
    from pathlib import Path

    files = sorted(glob.glob("configs/voc/*.yaml") + glob.glob("configs/coco/*.yaml"))
    assert len(files) == 56  # 2 datasets x 7 models x 4 strategies
    for f in files:
        cfg = load_config(f)
        assert cfg.train.epochs == (250 if "/voc/" in f else 140)
    mod = load_script("make_configs")
    for rel, text in mod.all_configs().items():
        assert Path("configs", rel).read_text() == text, f"configs/{rel} is stale: run scripts/make_configs.py"


def test_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"train": {"epochs": 5}}))
    cfg = load_config(p, ["train.epochs=2", "data.root=/x", "data.class_names=[a, b]", "train.lr=1e-3"])
    assert cfg.train.epochs == 2 and cfg.data.root == "/x" and cfg.data.class_names == ["a", "b"]
    assert cfg.train.lr == 1e-3
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"epoch": 2}}, "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
        ({"trian": {}}, "unknown key 'trian'"),
        ({"train": {"epochs": "two"}}, "train.epochs: expected an integer, got str 'two'"),
        ({"train": {"lr": True}}, "train.lr: expected a number"),
        ({"train": {"strategy": "atss2"}}, "train.strategy must be one of"),
        ({"model": {"name": "yolo"}}, "model.name must be one of"),
        ({"train": {"sigma": 1.0}}, "train.sigma must be > 1"),
        ({"data": {"input_size": 100}}, "multiple of 32"),
        ({"data": {"class_names": "cat"}}, "data.class_names: expected a list"),
        ({"train": 3}, "section 'train' must be a mapping"),
        ({"data": {"augment": "mosaic"}}, "data.augment must be true, false, ssd, flip or none"),
        ({"data": {"augment": 1}}, "data.augment"),
        ({"train": {"backbone_lr_mult": -1}}, "train.backbone_lr_mult must be >= 0"),
        # issue 22: values that used to train with exit 0 and leave a useless or NaN run behind
        ({"train": {"lr": float("inf")}}, "train.lr: expected a finite number, got inf"),
        ({"train": {"lr": "1e309"}}, "train.lr: expected a finite number"),
        ({"loss": {"focal_alpha": float("nan")}}, "loss.focal_alpha: expected a finite number"),
        ({"train": {"max_iters": -1}}, "train.max_iters must be >= 0"),
        ({"train": {"eval_interval": -2}}, "train.eval_interval must be >= 0"),
        ({"model": {"head_depth": 0}}, "model.head_depth must be from 1 to 16"),
        ({"model": {"head_depth": 17}}, "model.head_depth must be from 1 to 16"),
        ({"model": {"frozen_stages": 6}}, "model.frozen_stages must be from 0 (none) to 5"),
        ({"model": {"width": 2048}}, "model.width must be from 8 to 1024"),
        ({"data": {"input_size": 4096}}, "data.input_size must be a multiple of 32 from 32 to 2048"),
        ({"output_dir": ""}, "output_dir must not be empty"),
    ],
)
def test_bad_configs_are_clear_errors(data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(data, "my.yaml")
    assert message in str(e.value) and "my.yaml" in str(e.value)


def test_config_files_are_data_not_code(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["train.epochs"])


def test_infinite_values_from_the_command_line_are_refused(tmp_path):
    """``train.lr=1e309`` and ``.inf`` are YAML infinities: refused before anything runs (issue 22, item 10)."""
    for text in ("train.lr=1e309", "train.lr=.inf", "train.sigma=-.inf"):
        with pytest.raises(ConfigError, match="expected a finite number"):
            load_config(None, [text])


def test_an_override_whose_value_yaml_would_cut_at_a_comment_is_refused():
    """``output_dir=runs/a #1`` used to train into ``runs/a`` (YAML dropped ' #1'; issue 22, item 14)."""
    from mgdet.engine.config import parse_override

    for text, dropped in (("output_dir=runs/a #1", "'#1'"), ("train.lr=0.01 # was 0.02", "'# was 0.02'"),
                          ("output_dir=#x", "'#x'")):  # fmt: skip
        with pytest.raises(ConfigError, match="starts a YAML comment") as e:
            parse_override(text)
        assert dropped in str(e.value) and "quote the value" in str(e.value)
    assert parse_override("output_dir='runs/a #1'") == (["output_dir"], "runs/a #1")
    assert parse_override('output_dir="a #1"') == (["output_dir"], "a #1")
    assert parse_override("output_dir=runs/a#1") == (["output_dir"], "runs/a#1")  # no space: not a comment


def test_anchor_base_auto_scales_the_papers_anchors_with_the_input_size():
    """model.anchor_base: auto = 24 px x input / 320 (issue 23, item 4); stored in checkpoints as the number."""
    from mgdet.engine.builders import model_kwargs

    cfg = from_dict({"model": {"name": "retinanet", "anchor_base": "auto"}, "data": {"input_size": 256}})
    assert model_kwargs(cfg, 3)["anchor_base"] == 19.2
    at_320 = from_dict({"model": {"anchor_base": "auto"}, "data": {"input_size": 320}})
    assert "anchor_base" not in model_kwargs(at_320, 3)  # the paper's 24: nothing stored, as before
    with pytest.raises(ConfigError, match="model.anchor_base must be a number > 0 or auto"):
        from_dict({"model": {"anchor_base": "big"}})


def test_anchor_coverage_uses_the_anchors_training_builds(tiny_dataset):
    """The coverage of a run's data is computed on the detector built from the training kwargs (issue 23)."""
    from conftest import tiny_config

    from mgdet.anchors import generate_anchors, paper_layout
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.coverage import anchor_coverage_of, config_coverage, input_boxes

    raw = tiny_config(tiny_dataset, tiny_dataset / "unused")
    raw["model"]["anchor_base"] = "auto"
    cfg = from_dict(raw)
    got = config_coverage(cfg)
    anchors = generate_anchors(paper_layout(base_size=24.0 * 64 / 320), 64)
    want = anchor_coverage_of(input_boxes(build_dataset(cfg.data, train=True).records, 64), anchors, "x", 64)
    assert (
        got.num_anchors == want.num_anchors and got.at_05 == want.at_05 and got.median_best_iou == want.median_best_iou
    )

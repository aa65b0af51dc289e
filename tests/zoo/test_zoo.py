"""The shipped zoo: every detector reproduces its manifest's AP on the regenerated validation split (the
end-to-end regression test of model, post-processing and evaluation), files are what the manifests say,
zoo names work wherever a checkpoint path does, and packing a run round-trips."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from mgdet.cli import main
from mgdet.data.benchmark import DEFAULT_NUM_VAL, generate_benchmark
from mgdet.demo.pack import MAX_DETECTOR_BYTES, pack_run
from mgdet.zoo import DEMO_PAIR, ZooError, dataset_fingerprint, load_detector, load_state, names, read_manifest
from mgdet.zoo.catalog import ENV_DIR, HISTORY_FILE, WEIGHTS_FILE, zoo_dir

REPO = Path(__file__).resolve().parents[2]
ZOO = names()
#: the issue's tolerance: the live AP of a shipped detector is its manifest's within 0.2 AP points
AP_TOLERANCE = 0.002


@pytest.fixture(scope="module")
def val_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark's validation split, regenerated (the generator renders each image from its own seed, so
    the split does not depend on the training images, which are left out to save time)."""
    root = tmp_path_factory.mktemp("zoo_val") / "benchmark"
    generate_benchmark(root, seed=0, num_train=0, num_val=DEFAULT_NUM_VAL)
    return root


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_the_zoo_holds_the_demo_pair_small_complete_and_from_the_committed_configs() -> None:
    assert set(DEMO_PAIR) <= set(ZOO)
    for name in ZOO:
        m = read_manifest(name)
        folder = zoo_dir() / name
        weights = folder / WEIGHTS_FILE
        assert weights.stat().st_size == m["weights"]["bytes"] <= MAX_DETECTOR_BYTES
        assert m["weights"]["dtype"] == "float16" and len(m["weights"]["sha256"]) == 64
        assert "scripts/make_zoo.sh" in m["command"] and m["machine"] and m["train_time_s"] > 0
        assert set(m["metrics"]["float32"]) >= {"AP", "AP50", "AP75"} and "AP" in m["metrics"]["stored"]
        assert m["dataset"]["generator_version"] and len(m["dataset"]["val_sha256"]) == 64
        # trained from the committed config: every setting but the output folder is the file's
        committed = yaml.safe_load((REPO / m["config_file"]).read_text())
        for section in ("model", "data", "train"):
            for key, value in committed[section].items():
                assert m["config"][section][key] == value, (name, section, key)
        epochs = [int(line.split(",")[0]) for line in (folder / HISTORY_FILE).read_text().splitlines()[1:]]
        assert epochs == list(range(1, m["epochs"] + 1)) and m["epochs"] == committed["train"]["epochs"]


def test_regenerated_validation_split_has_the_manifests_fingerprint(val_split: Path) -> None:
    fp = dataset_fingerprint(val_split)
    for name in ZOO:
        shipped = read_manifest(name)["dataset"]
        assert (shipped["generator_version"], shipped["val_sha256"]) == (fp["generator_version"], fp["val_sha256"])


@pytest.fixture(scope="module")
def zoo_results(val_split: Path) -> dict[str, dict[str, float]]:
    """Every zoo detector evaluated now on the regenerated split, in one pass over the images (their frozen
    backbone is shared and computed once; tested equal to evaluating each alone below)."""
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.config import from_dict
    from mgdet.engine.inference import evaluate_models

    cfgs = [from_dict(dict(read_manifest(name)["config"])) for name in ZOO]
    assert all(c.eval == cfgs[0].eval and c.data.val_split == cfgs[0].data.val_split for c in cfgs)
    cfgs[0].data.root = str(val_split)
    dataset = build_dataset(cfgs[0].data, train=False)
    results = evaluate_models([load_detector(n) for n in ZOO], dataset, cfgs[0].eval, torch.device("cpu"),
                              progress=False)  # fmt: skip
    return {name: r.metrics for name, r in zip(ZOO, results)}


@pytest.mark.parametrize("name", ZOO)
def test_zoo_detector_reproduces_its_manifest_ap(name: str, zoo_results: dict[str, dict[str, float]]) -> None:
    """Evaluated now on the regenerated split, the stored detector gives the AP recorded when it was packed."""
    m = read_manifest(name)
    for key in ("AP", "AP50", "AP75"):
        assert zoo_results[name][key] == pytest.approx(m["metrics"]["stored"][key], abs=AP_TOLERANCE), key
    # half-precision storage costs (almost) nothing against the float32 model at the end of training
    assert zoo_results[name]["AP"] == pytest.approx(m["metrics"]["float32"]["AP"], abs=0.005)


def test_load_detector_rebuilds_float32_weights_from_the_stored_file_and_the_imagenet_backbone() -> None:
    from mgdet.models.pretrained import read_state_dict

    det = load_detector("retinanet_mbv2_mg")
    state = det.state_dict()
    assert not det.training and det.zoo_manifest["name"] == "retinanet_mbv2_mg"
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    imagenet = read_state_dict("offline")
    assert torch.equal(state["backbone.features.0.0.weight"], imagenet["features.0.0.weight"])
    stored = torch.load(zoo_dir() / "retinanet_mbv2_mg" / WEIGHTS_FILE, weights_only=True)
    assert not any(k.startswith("backbone.") for k in stored)
    for key, value in stored.items():
        assert torch.equal(state[key], value.float() if value.is_floating_point() else value), key


@pytest.fixture
def tampered_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the zoo pair whose MG weight file has one byte changed, as the zoo folder (``$MGDET_ZOO_DIR``)."""
    root = tmp_path / "zoo"
    for name in DEMO_PAIR:
        shutil.copytree(zoo_dir() / name, root / name)
    weights = root / DEMO_PAIR[1] / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    monkeypatch.setenv(ENV_DIR, str(root))
    return root


def test_a_tampered_weight_file_is_refused(tampered_zoo: Path, tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"weights.pth: sha256 .* is not the manifest's .*refused"):
        load_state(DEMO_PAIR[1])
    rc, out, err = _run(["eval", f"zoo:{DEMO_PAIR[1]}", "--out", str(tmp_path / "ev"), "--no-progress"])
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "modified or damaged; refused" in err and "Traceback" not in err
    assert load_state(DEMO_PAIR[0])["model"]  # the untouched one still loads


def test_an_unknown_zoo_name_is_one_line_listing_the_known_ones(tiny_dataset: Path, tmp_path: Path) -> None:
    image = sorted((tiny_dataset / "JPEGImages").glob("*.jpg"))[0]
    detect = ["detect", "zoo:nope", str(image), "--out", str(tmp_path / "d")]
    for argv in (["eval", "zoo:retinanet_mbv2_nope"], detect, ["zoo", "nope"]):
        rc, _, err = _run(argv)
        assert rc == 2 and len(err.strip().splitlines()) == 1, argv
        assert "unknown zoo detector" in err and "known: " + ", ".join(ZOO) in err


def test_zoo_names_work_in_eval_detect_and_export(tiny_dataset: Path, tmp_path: Path) -> None:
    ref = f"zoo:{DEMO_PAIR[1]}"
    rc, out, err = _run(["eval", ref, "--data", str(tiny_dataset), "--out", str(tmp_path / "ev"), "--no-progress"])
    assert rc == 0, err
    assert "misalignment rate" in out and (tmp_path / "ev" / "metrics.json").is_file()
    images = sorted((tiny_dataset / "JPEGImages").glob("val_*.jpg"))[:2]
    rc, out, err = _run(["detect", ref, *map(str, images), "--out", str(tmp_path / "det"), "--no-progress"])
    assert rc == 0, err
    dets = json.loads((tmp_path / "det" / "detections.json").read_text())
    assert len(dets) == 2 and (tmp_path / "det" / images[0].name).is_file()
    pytest.importorskip("onnx")
    rc, out, err = _run(["export", ref, "--onnx", str(tmp_path / "mg.onnx")])
    assert rc == 0, err
    assert (tmp_path / "mg.onnx").stat().st_size > 1_000_000 and "onnx.checker passed" in out


def test_mgdet_zoo_lists_the_detectors_and_shows_one(capsys: pytest.CaptureFixture) -> None:
    rc, out, _ = _run(["zoo"])
    assert rc == 0
    for name in ZOO:
        ap = 100 * read_manifest(name)["metrics"]["float32"]["AP"]
        assert f"zoo:{name}" in out and f"{ap:.1f}" in out
    rc, out, _ = _run(["zoo", DEMO_PAIR[1]])
    assert rc == 0 and "scripts/make_zoo.sh" in out and "configs/benchmark/retinanet_mbv2_mg.yaml" in out


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the quick recipe (frozen ImageNet backbone, a few steps) in a reproduce folder."""
    from mgdet.demo.pipeline import run_reproduce

    out = tmp_path_factory.mktemp("quick_zoo")
    run_reproduce(out=out, detectors=["retinanet_mbv2"], strategies=["mg"], seeds=[0], quick=True, progress=False,
                  log=lambda s: None)  # fmt: skip
    return out / "runs" / "retinanet_mbv2_mg_s0"


def test_pack_round_trips_and_refuses_what_it_cannot_store(quick_run: Path, tmp_path: Path) -> None:
    from mgdet.engine.checkpoint import load_checkpoint, save_checkpoint
    from mgdet.errors import OutputError

    root = tmp_path / "zoo"
    dest = pack_run(quick_run, root, command="test", progress=False)
    assert dest == root / "retinanet_mbv2_mg" and names(root) == ["retinanet_mbv2_mg"]
    m = read_manifest("retinanet_mbv2_mg", root)
    assert m["metrics"]["stored"]["AP"] == pytest.approx(m["metrics"]["float32"]["AP"], abs=0.01)
    assert m["dataset"] == {**m["dataset"], **dataset_fingerprint(quick_run.parents[1] / "benchmark_quick")}
    loaded = load_state("retinanet_mbv2_mg", root)["model"]
    trained = load_checkpoint(quick_run / "last.pth")["model"]
    assert loaded.keys() == trained.keys()
    for key, value in trained.items():  # the backbone exactly, the rest rounded to float16
        want = value.half().float() if value.is_floating_point() and not key.startswith("backbone.") else value
        assert torch.equal(loaded[key], want), key
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        pack_run(quick_run, root, progress=False)
    # a run whose backbone moved away from the ImageNet file cannot be rebuilt from it: refused
    moved = tmp_path / "moved" / "runs" / quick_run.name
    shutil.copytree(quick_run, moved)
    state = load_checkpoint(moved / "last.pth")
    state["model"]["backbone.features.0.0.weight"] += 0.01
    save_checkpoint(state, moved / "last.pth")
    with pytest.raises(ZooError, match="its backbone is not the ImageNet file"):
        pack_run(moved, tmp_path / "zoo2", progress=False)
    (moved / "metrics.json").unlink()
    with pytest.raises(ZooError, match="not a finished run"):
        pack_run(moved, tmp_path / "zoo2", progress=False)


def test_a_zoo_detector_cannot_be_resumed_as_a_run(tiny_dataset: Path, tmp_path: Path) -> None:
    """A zoo detector holds weights only: ``--resume zoo:NAME`` is one clear line, and nothing is written."""
    cfg = REPO / "configs" / "benchmark" / "retinanet_mbv2_mg.yaml"
    out = tmp_path / "run"
    rc, _, err = _run(["train", str(cfg), f"data.root={tiny_dataset}", f"output_dir={out}", "data.num_workers=0",
                       "--resume", f"zoo:{DEMO_PAIR[1]}", "--no-progress", "--no-tensorboard"])  # fmt: skip
    assert rc == 2 and "holds weights only" in err and "cannot be resumed" in err, err
    assert not (out / "last.pth").exists()


def test_zoo_detectors_evaluated_together_share_the_backbone_and_give_the_same_numbers(tiny_dataset: Path) -> None:
    """The demo evaluates the zoo pair in one pass, computing the frozen backbone they share once: the metrics
    and the misaligned detections are exactly those of evaluating each alone."""
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.config import from_dict
    from mgdet.engine.inference import evaluate_model, evaluate_models, same_backbone

    cfg = from_dict(dict(read_manifest(DEMO_PAIR[0])["config"]))
    cfg.data.root = str(tiny_dataset)
    ds = build_dataset(cfg.data, train=False)
    dets = [load_detector(n) for n in DEMO_PAIR]
    assert same_backbone(dets)
    together = evaluate_models(dets, ds, cfg.eval, torch.device("cpu"), progress=False)
    for det, joint in zip(dets, together):
        alone = evaluate_model(det, ds, cfg.eval, torch.device("cpu"), progress=False)
        assert alone.metrics == joint.metrics and alone.misaligned == joint.misaligned
    with torch.no_grad():
        dets[1].backbone.features[0][0].weight.mul_(1.01)
    assert not same_backbone(dets)


def test_a_damaged_manifest_or_another_backbone_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "zoo"
    shutil.copytree(zoo_dir() / DEMO_PAIR[1], root / DEMO_PAIR[1])
    monkeypatch.setenv(ENV_DIR, str(root))
    manifest = root / DEMO_PAIR[1] / "manifest.json"
    data = json.loads(manifest.read_text())
    # the backbone file the detector was trained with is named by its sha256: another file is refused
    manifest.write_text(json.dumps({**data, "backbone": {**data["backbone"], "sha256": "0" * 64}}))
    with pytest.raises(ZooError, match="mobilenet_v2-b0353104.pth: sha256 is not the 0000"):
        load_state(DEMO_PAIR[1])
    manifest.write_text(json.dumps({k: v for k, v in data.items() if k != "weights"}))
    with pytest.raises(ZooError, match="manifest.json: field 'weights' missing"):
        load_state(DEMO_PAIR[1])
    manifest.write_text("{not json")
    rc, _, err = _run(["zoo", DEMO_PAIR[1]])
    assert rc == 2 and "not a readable JSON manifest" in err and len(err.strip().splitlines()) == 1

"""Writing the benchmark: images, VOC xml, COCO json, README and ``benchmark.json``, byte for byte
deterministic for a seed; an existing matching benchmark is reused."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mgdet.data.benchmark.backgrounds import _PIP_NAME, BACKGROUND_SOURCES
from mgdet.data.benchmark.scene import (
    CLASS_NAMES,
    DEFAULT_IMAGE_SIZE,
    SPLITS,
    Sample,
    SceneConfig,
    compose_image,
    image_rng,
)
from mgdet.data.benchmark.statistics import sample_statistics
from mgdet.errors import OutputError
from mgdet.limits import MAX_BENCHMARK_IMAGES, MAX_INPUT_SIZE

GENERATOR_VERSION = "1.0"
"""Bumped whenever the rendered pixels or annotations change for a given seed."""

DEFAULT_NUM_TRAIN = 2000
DEFAULT_NUM_VAL = 400
JPEG_QUALITY = 92
_SPLIT_ID_OFFSET = {"train": 0, "val": 1_000_000}  # COCO image ids unique over both splits
_OUTPUTS = (
    "JPEGImages",
    "Annotations",
    "ImageSets",
    "annotations",
    "classes.txt",
    "README.md",
    "benchmark.json",
)
#: written first and removed last: the record of an unfinished run (what ``--overwrite`` may remove)
MARKER = ".mgdet-benchmark-partial.json"


@dataclass
class BenchmarkInfo:
    """What :func:`generate_benchmark` produced (or found already there)."""

    root: Path
    seed: int
    num_train: int
    num_val: int
    image_size: int
    class_names: tuple[str, ...] = CLASS_NAMES
    stats: dict = field(default_factory=dict)  # {"train": {...}, "val": {...}} see sample_statistics
    seconds: float = 0.0
    skipped: bool = False  # True when a matching benchmark was already present


#: ``mgdet data generate --crowded``: 100-300 small objects per image (2-6 % of the side: 5-15 px at 256),
#: as on retail shelves or aerial images; never an empty image
CROWDED_SCENE: dict[str, Any] = {"min_objects": 100, "max_objects": 300, "min_scale": 0.02, "max_scale": 0.06,
                                 "empty_prob": 0.0}  # fmt: skip


def _scene(image_size: int, scene: dict[str, Any] | None) -> SceneConfig:
    return SceneConfig(image_size=image_size, **(scene or {}))


def _params(seed: int, num_train: int, num_val: int, image_size: int, scene: dict[str, Any] | None = None) -> dict:
    cfg = asdict(_scene(image_size, scene))
    if cfg["min_objects"] == 1:  # added with --crowded: the records of default benchmarks stay as they were
        del cfg["min_objects"]
    return {
        "seed": int(seed),
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": int(image_size),
        "jpeg_quality": JPEG_QUALITY,
        "scene": cfg,
    }


def benchmark_matches(
    root: str | Path, seed: int, num_train: int, num_val: int, image_size: int, scene: dict[str, Any] | None = None
) -> bool:
    """True when ``root/benchmark.json`` records this generator version and these parameters."""
    meta_path = Path(root) / "benchmark.json"
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return (
        meta.get("generator_version") == GENERATOR_VERSION
        and meta.get("params") == _params(seed, num_train, num_val, image_size, scene)
        and tuple(meta.get("classes", ())) == CLASS_NAMES
    )


def image_stem(split: str, index: int) -> str:
    """File stem of image ``index`` of ``split`` (``train_000000``)."""
    return f"{split}_{index:06d}"


def _voc_xml(stem: str, sample: Sample) -> bytes:
    """VOC annotation of one image (1-based inclusive pixel indices, see the module docstring)."""
    s = sample.image.shape[0]
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = f"{stem}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "mgdet benchmark"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(s)
    ET.SubElement(size, "height").text = str(s)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for k in range(len(sample)):
        x1, y1, x2, y2 = (int(v) for v in sample.boxes[k])  # pixel edges
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = CLASS_NAMES[int(sample.labels[k])]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = str(int(sample.truncated[k]))
        ET.SubElement(obj, "occluded").text = str(int(sample.occlusion[k] > 0))
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        ET.SubElement(bnd, "xmin").text = str(x1 + 1)  # 1-based index of the first column
        ET.SubElement(bnd, "ymin").text = str(y1 + 1)
        ET.SubElement(bnd, "xmax").text = str(x2)  # 1-based index of the last column
        ET.SubElement(bnd, "ymax").text = str(y2)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8") + b"\n"


def _readme_text(seed: int, num_train: int, num_val: int, image_size: int) -> str:
    rows = "\n".join(f"| {s.name} | {_PIP_NAME[s.package]} | `{s.relpath}` | {s.licence} |" for s in BACKGROUND_SOURCES)
    return f"""# mgdet CPU benchmark (generator {GENERATOR_VERSION})

Generated by `mgdet.data.benchmark.generate_benchmark(seed={seed}, num_train={num_train},
num_val={num_val}, image_size={image_size})`. Regenerating with the same parameters and the same
installed packages gives byte-identical files.

Classes ({len(CLASS_NAMES)}): {", ".join(CLASS_NAMES)}.
The class is the outline of a rendered shape; colours, textures, outline strokes, shading, rotation,
aspect and size are shared by all classes.

## Layout
- `JPEGImages/<id>.jpg` ({image_size}x{image_size} RGB, JPEG quality {JPEG_QUALITY})
- `Annotations/<id>.xml` VOC: 1-based inclusive pixel indices; x1 = xmin - 1, y1 = ymin - 1,
  x2 = xmax, y2 = ymax gives the exact box in pixel-edge coordinates. Boxes are the full (amodal)
  tight extent of the object mask inside the image. `difficult` is always 0.
- `ImageSets/Main/{{train,val}}.txt`
- `annotations/instances_{{train,val}}.json` COCO: bbox = [x1, y1, w, h] (same boxes), area = w * h,
  iscrowd = 0, category ids 1..{len(CLASS_NAMES)} in `classes.txt` order.
- `classes.txt`, `benchmark.json` (generator version, seed, parameters, statistics).

## Sources and licences
The rendered shapes are generated by mgdet (MIT). The backgrounds (and the "photo" object texture)
are crops of pictures that ship inside pip wheels; nothing is downloaded. What each package says
about each picture (scikit-image: the docstrings of `skimage.data`; scikit-learn:
`sklearn/datasets/images/README.txt`; matplotlib: the picture's embedded JPEG comment, the package
itself states no separate licence for its sample data):

| picture | package | file | licence / status as stated |
|---|---|---|---|
{rows}

Note: the two scikit-learn pictures are CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/),
so images cropped from them must credit the photographers and keep the licence reference: china.jpg
by danielbuechele on Flickr; flower.jpg by the Flickr user vultilion according to the README's source
link (its attribution line repeats "danielbuechele", apparently a copy-paste slip). Everything else is
public domain / CC0 / "no known copyright restrictions" as stated by the package that ships it.
Redistributing this generated folder therefore requires keeping this README (the attribution).
"""


_STEM = re.compile(r"(train|val)_(\d{6,})")


def owned_files(root: Path) -> list[Path] | None:
    """The files the generator wrote into ``root``, from the parameters recorded in ``benchmark.json`` (a
    finished run) or :data:`MARKER` (an unfinished one); ``None`` when neither is there (not a benchmark)."""
    for name in ("benchmark.json", MARKER):
        try:
            meta = json.loads((root / name).read_text())
            counts = {"train": int(meta["params"]["num_train"]), "val": int(meta["params"]["num_val"])}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        files = [root / n for n in ("classes.txt", "README.md", "benchmark.json", MARKER)]
        for split in counts:
            files += [root / "ImageSets" / "Main" / f"{split}.txt", root / "annotations" / f"instances_{split}.json"]
        # the images and annotations present, not every index the record claims (which may be any number)
        for sub, ext in (("JPEGImages", ".jpg"), ("Annotations", ".xml")):
            folder = root / sub
            for f in folder.iterdir() if folder.is_dir() else ():
                m = _STEM.fullmatch(f.name[: -len(ext)]) if f.name.endswith(ext) else None
                if m and int(m.group(2)) < counts[m.group(1)] and image_stem(m.group(1), int(m.group(2))) == m.group(0):
                    files.append(f)
        return files
    return None


def _remove_outputs(root: Path, files: list[Path]) -> None:
    """Delete ``files`` (what the generator recorded), then its folders if they are left empty; nothing else."""
    for f in files:
        if f.is_file() or f.is_symlink():
            f.unlink()
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main", "ImageSets", "annotations"):
        d = root / sub
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def _render_chunk(
    root: str, seed: int, split: str, indices: range, image_size: int, scene: dict[str, Any] | None = None
) -> list[Sample]:
    """Render images ``indices`` of ``split``, write their JPEG and VOC xml, return stripped samples.

    Top-level (picklable) so that worker processes can run it; the returned samples keep only boxes,
    labels, truncation and occlusion (no image, no masks).
    """
    cfg = _scene(image_size, scene)
    out: list[Sample] = []
    empty = np.zeros((0, image_size, image_size), bool)
    for i in indices:
        sample = compose_image(image_rng(seed, split, i), cfg)
        stem = image_stem(split, i)
        ok, jpg = cv2.imencode(".jpg", sample.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:  # pragma: no cover
            raise RuntimeError("JPEG encoding failed")
        (Path(root) / "JPEGImages" / f"{stem}.jpg").write_bytes(jpg.tobytes())
        (Path(root) / "Annotations" / f"{stem}.xml").write_bytes(_voc_xml(stem, sample))
        out.append(dataclasses.replace(sample, image=np.zeros((0, 0, 3), np.uint8), masks=empty, visible=empty))
    return out


def _coco_json(split: str, seed: int, image_size: int, samples: Sequence[Sample]) -> dict:
    """COCO instances dict of one split (ids: images ``offset + i + 1``, annotations ``1..``)."""
    images, annotations = [], []
    for i, sample in enumerate(samples):
        image_id = _SPLIT_ID_OFFSET[split] + i + 1
        images.append(
            {
                "id": image_id,
                "file_name": f"{image_stem(split, i)}.jpg",
                "width": image_size,
                "height": image_size,
            }
        )
        for box, label in zip(sample.boxes.astype(int).tolist(), sample.labels.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": "mgdet CPU benchmark", "version": GENERATOR_VERSION, "seed": int(seed)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(CLASS_NAMES)],
    }


def generate_benchmark(
    out_dir: str | Path,
    seed: int = 0,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    image_size: int = DEFAULT_IMAGE_SIZE,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    scene: dict[str, Any] | None = None,
) -> BenchmarkInfo:
    """Render the benchmark into ``out_dir`` in the VOC + COCO layout of docs/CONTRACTS.md.

    If ``out_dir/benchmark.json`` already records the same generator version and parameters, nothing
    is written and the recorded info is returned with ``skipped=True``. If ``out_dir`` holds other
    generator outputs (different parameters, or an interrupted run), :class:`OutputError` is raised
    unless ``overwrite``; then only the files recorded by the earlier run (:func:`owned_files`) are removed.
    A folder with VOC/COCO files but no such record (a real dataset) is always refused.
    ``benchmark.json`` is written last, so an interrupted run is never mistaken for a finished one.

    ``progress(done, total)`` is called as images are finished (for a progress bar). ``workers > 1``
    renders in that many "spawn" processes; the files do not depend on it, since every image has its
    own random stream. Spawned workers re-import the caller's main module, so only pass it from a
    program whose main module is importable and guarded (``if __name__ == "__main__":``), e.g. the
    ``mgdet`` console script; not from ``python - <<EOF`` or ``python -c``. ``scene`` overrides
    :class:`SceneConfig` fields (e.g. :data:`CROWDED_SCENE`); they are part of the recorded parameters.
    """
    if num_train < 0 or num_val < 0 or image_size < 32:
        raise ValueError("num_train/num_val must be >= 0 and image_size >= 32")
    if num_train + num_val > MAX_BENCHMARK_IMAGES or image_size > MAX_INPUT_SIZE:
        raise ValueError(f"at most {MAX_BENCHMARK_IMAGES} images of at most {MAX_INPUT_SIZE} px")
    root = Path(out_dir)
    if not overwrite and benchmark_matches(root, seed, num_train, num_val, image_size, scene):
        meta = json.loads((root / "benchmark.json").read_text())
        return BenchmarkInfo(root, seed, num_train, num_val, image_size, stats=meta["stats"], skipped=True)
    found = [name for name in (*_OUTPUTS, MARKER) if (root / name).exists()]
    if found:
        owned = owned_files(root)
        if owned is None:
            raise OutputError(
                f"{root} is not a benchmark written by mgdet (no benchmark.json or {MARKER}, but it holds "
                f"{', '.join(found)}): nothing was changed; choose another output folder"
            )
        if not overwrite:
            raise OutputError(
                f"{root} holds an mgdet benchmark with other parameters or an unfinished one; pass --overwrite "
                "(overwrite=True) to replace it: only the files the generator recorded are removed"
            )
        _remove_outputs(root, owned)

    start = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    params = _params(seed, num_train, num_val, image_size, scene)
    (root / MARKER).write_text(json.dumps({"generator_version": GENERATOR_VERSION, "params": params}) + "\n")
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main", "annotations"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    total = num_train + num_val
    chunk = 50
    jobs = [
        (str(root), int(seed), split, range(lo, min(lo + chunk, count)), int(image_size), scene)
        for split, count in (("train", num_train), ("val", num_val))
        for lo in range(0, count, chunk)
    ]
    rendered: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    done = 0

    def collect(job: tuple, samples: list[Sample]) -> None:
        nonlocal done
        rendered[job[2]].extend(samples)  # jobs are consumed in order, so samples stay in index order
        done += len(samples)
        if progress is not None:
            progress(done, total)

    if workers > 1:
        # "spawn": safe whatever threads (torch, OpenCV) the parent process already runs
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for job, samples in zip(jobs, pool.map(_render_chunk, *zip(*jobs))):
                collect(job, samples)
    else:
        for job in jobs:
            collect(job, _render_chunk(*job))

    stats: dict[str, dict] = {}
    for split in SPLITS:
        samples = rendered[split]
        stems = "".join(f"{image_stem(split, i)}\n" for i in range(len(samples)))
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text(stems)
        coco = _coco_json(split, seed, image_size, samples)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco, separators=(",", ":")))
        stats[split] = sample_statistics(samples, image_size)
    (root / "classes.txt").write_text("".join(f"{n}\n" for n in CLASS_NAMES))
    (root / "README.md").write_text(_readme_text(seed, num_train, num_val, image_size))
    meta = {
        "generator": "mgdet.data.benchmark",
        "generator_version": GENERATOR_VERSION,
        "params": _params(seed, num_train, num_val, image_size, scene),
        "classes": list(CLASS_NAMES),
        "sources": [asdict(src) for src in BACKGROUND_SOURCES],
        "stats": stats,
    }
    (root / "benchmark.json").write_text(json.dumps(meta, indent=2) + "\n")
    (root / MARKER).unlink()
    seconds = time.perf_counter() - start
    return BenchmarkInfo(root, seed, num_train, num_val, image_size, stats=stats, seconds=seconds)

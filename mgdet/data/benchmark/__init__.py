"""The shipped CPU benchmark: a detection dataset generated locally, in VOC and COCO layouts.

PASCAL VOC and MS COCO cannot be downloaded everywhere, so the project's central claim (Mutual
Guidance beats static IoU anchor matching, above all on AP75) is tested on a dataset that this module
renders from material installed with pip:

* **Backgrounds** are random crops (scale, aspect, flip, colour jitter) of real photographs bundled in
  the scikit-image, scikit-learn and matplotlib wheels (see :data:`BACKGROUND_SOURCES`).
* **Objects** are ten procedurally rendered shape classes (:data:`CLASS_NAMES`). The class is the
  *outline* only; colour, texture, outline stroke, shading, rotation, aspect ratio and size are drawn
  from the same distributions for every class, so colour alone never tells the class apart. Pairs such
  as circle/ring/crescent, square/hexagon/circle and star/cross share most of their silhouette at small
  scale, which keeps the task learnable by a small CNN yet not trivial.

The paper's hard cases are produced on purpose: objects placed next to, and partly on top of, another
object ("a man riding a horse": box IoU 0.1-0.5), partial occlusion (painter's order), truncation by
the image border, sizes from about 8% to 60% of the image side, 0-6 objects per image and about 5%
empty images.

Box convention (exact, no rounding): an object's *mask* is the set of pixels its binary polygon covers
(``cv2.fillPoly`` without anti-aliasing). The box is the FULL (amodal) tight extent of that mask inside
the image, occluded parts included, like VOC boxes. If the mask covers pixel columns ``c0..c1`` and rows
``r0..r1`` (0-based, inclusive), then

* ``xyxy`` (mgdet, pixel edges) = ``[c0, r0, c1 + 1, r1 + 1]``;
* VOC xml (1-based inclusive pixel indices) = ``xmin=c0+1, ymin=r0+1, xmax=c1+1, ymax=r1+1``, so a
  loader doing ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` recovers ``xyxy`` exactly;
* COCO json ``bbox`` = ``[c0, r0, c1 - c0 + 1, r1 - r0 + 1]`` (xywh), ``area`` = box area ``w * h``.

An object is only accepted if at least 30% of its pixels stay visible after every later object is
pasted and at least 60% of it lies inside the image; placements that would break that are re-drawn, so
no annotated object is more than 70% hidden and no visible shape is left unannotated.

Every image has its own random stream ``numpy.random.default_rng([seed, split_code, index])``: the same
seed gives byte-identical files (OpenCV JPEG encoding at a fixed quality, JSON/XML written in a fixed
order, no timestamps), and the val split does not change when ``num_train`` changes.

Package layout, one job each: :mod:`~mgdet.data.benchmark.backgrounds` (the photographs),
:mod:`~mgdet.data.benchmark.scene` (classes and composition), :mod:`~mgdet.data.benchmark.statistics` (hard-case
counts), :mod:`~mgdet.data.benchmark.writer` (the VOC + COCO folder), :mod:`~mgdet.data.benchmark.verify`.
"""

from mgdet.data.benchmark.backgrounds import BACKGROUND_SOURCES, BackgroundSource, load_backgrounds
from mgdet.data.benchmark.scene import (
    CLASS_NAMES,
    DEFAULT_IMAGE_SIZE,
    SPLITS,
    Sample,
    SceneConfig,
    compose_image,
    image_rng,
    render_sample,
)
from mgdet.data.benchmark.statistics import sample_statistics
from mgdet.data.benchmark.verify import verify_benchmark
from mgdet.data.benchmark.writer import (
    DEFAULT_NUM_TRAIN,
    DEFAULT_NUM_VAL,
    GENERATOR_VERSION,
    BenchmarkInfo,
    benchmark_matches,
    generate_benchmark,
    image_stem,
)

__all__ = [
    "BACKGROUND_SOURCES",
    "CLASS_NAMES",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_NUM_TRAIN",
    "DEFAULT_NUM_VAL",
    "GENERATOR_VERSION",
    "SPLITS",
    "BackgroundSource",
    "BenchmarkInfo",
    "Sample",
    "SceneConfig",
    "benchmark_matches",
    "compose_image",
    "generate_benchmark",
    "image_rng",
    "image_stem",
    "load_backgrounds",
    "render_sample",
    "sample_statistics",
    "verify_benchmark",
]

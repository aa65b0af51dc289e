"""Upper bounds on the sizes a user (or a file) can ask for, checked before anything is allocated: a value
beyond them is a one-line usage error instead of running out of memory. Torch-free.

They are far above what the paper's detectors use (320 px, 256 channels, 4 head layers) and are documented in
the README ("Errors and your files")."""

from __future__ import annotations

#: input size of a detector, in pixels per side (data.input_size, --size, --input-size, a checkpoint's)
MAX_INPUT_SIZE = 2048
#: channels of the neck and head (model.width; a checkpoint's neck_width / head_width)
MAX_WIDTH = 1024
#: 3x3 conv layers of each head branch (model.head_depth)
MAX_HEAD_DEPTH = 16
#: pyramid levels a checkpoint may declare
MAX_LEVELS = 8
#: classes of a detector
MAX_CLASSES = 10_000
#: images of a generated benchmark (train + val), also what a benchmark.json may claim
MAX_BENCHMARK_IMAGES = 10_000_000

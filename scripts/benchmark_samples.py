"""Draw a grid of benchmark samples with their boxes: docs/figures/benchmark_samples.png.

Usage: ``python scripts/benchmark_samples.py [--out docs/figures/benchmark_samples.png] [--seed 0]``.
The images are rendered in memory exactly as ``mgdet.data.benchmark.generate_benchmark`` renders them
(before JPEG encoding); the PNG is palette-quantized to stay small (< 300 KB).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mgdet.data.benchmark import CLASS_NAMES, render_sample

# one distinct colour per class (RGB)
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
    ],
    np.uint8,
)


def draw(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Boxes (xyxy pixel edges) and class names drawn on a copy of ``image`` [S, S, 3] RGB."""
    out = image.copy()
    for (x1, y1, x2, y2), label in zip(boxes.astype(int).tolist(), labels.tolist()):
        colour = tuple(int(c) for c in PALETTE[label % len(PALETTE)])
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, 1)
        name = CLASS_NAMES[label]
        (tw, th), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.33, 1)
        ty = max(y1, th + 2)
        cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 2, ty), colour, -1)
        cv2.putText(out, name, (x1 + 1, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def make_grid(seed: int = 0, rows: int = 3, cols: int = 4) -> np.ndarray:
    """``[rows * S, cols * S, 3]`` uint8 grid of the first train images of ``seed``, one empty included."""
    tiles = []
    index = 0
    empty_shown = False
    while len(tiles) < rows * cols:
        s = render_sample(seed=seed, index=index)
        index += 1
        if len(s) == 0:
            if empty_shown:
                continue
            empty_shown = True
        tiles.append(draw(s.image, s.boxes, s.labels))
    lines = [np.concatenate(tiles[r * cols : (r + 1) * cols], axis=1) for r in range(rows)]
    return np.concatenate(lines, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/benchmark_samples.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    grid = make_grid(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB, {grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()

"""Drawing detections on images (OpenCV), with a colour-blind-safe palette."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: Okabe-Ito palette (RGB), distinguishable with the common colour-vision deficiencies.
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (0, 0, 0), (153, 153, 153)]  # fmt: skip


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Return a copy of ``image`` (RGB uint8 [H, W, 3]) with boxes ([N, 4] xyxy pixels) and ``name score`` tags."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    th = thickness or max(1, round(min(h, w) / 250))
    order = np.argsort(np.asarray(scores))  # draw the best last (on top)
    for i in order:
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        lab = int(labels[i])
        colour = PALETTE[lab % len(PALETTE)]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, th)
        name = class_names[lab] if class_names and lab < len(class_names) else str(lab)
        text = f"{name} {float(scores[i]):.2f}"
        scale = max(0.35, min(h, w) / 900)
        (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(y1, tht + base)
        cv2.rectangle(out, (x1, ty - tht - base), (x1 + tw, ty), colour, -1)
        cv2.putText(out, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out

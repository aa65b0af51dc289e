"""Detection evaluation: COCO metrics (through faster-coco-eval), VOC07 metrics (numpy), misalignment rate.

Inputs are plain per-image dicts so that any dataset (VOC, COCO, the shipped benchmark) can be evaluated
without writing annotation files:

```python
gts  = [dict(image_id=7, boxes=[N, 4] xyxy original pixels, labels=[N] 0-based, ignore=[N] bool,
             height=H, width=W), ...]
dets = [dict(image_id=7, boxes=[M, 4] xyxy original pixels, scores=[M], labels=[M] 0-based), ...]
result = evaluate(gts, dets, class_names)
result.metrics["AP"], result.metrics["voc07_map50"], result.per_class[0]["AP50"]
```

Arrays may be numpy arrays, torch tensors (any device) or nested lists. Ignored ground truth (VOC
"difficult", COCO "crowd", ``ignore=True``) never counts as a positive, and a detection that is matched to
it is neither a true nor a false positive; the COCO and VOC paths differ in details (see their modules).

* :mod:`~mgdet.evaluation.inputs` - the dicts above -> numpy arrays.
* :mod:`~mgdet.evaluation.coco` - COCO dicts and the faster-coco-eval path.
* :mod:`~mgdet.evaluation.voc07` - the VOC2007 11-point AP (devkit rule).
* :mod:`~mgdet.evaluation.misalignment` - the paper's misalignment rate.
* :mod:`~mgdet.evaluation.result` - :class:`EvalResult`, its table and its JSON file.
* :mod:`~mgdet.evaluation.evaluate` - :func:`evaluate`, everything above in one call.
"""

from mgdet.boxes_np import pairwise_iou
from mgdet.evaluation.coco import COCO_IOU_THRESHOLDS, coco_gt_dict, coco_results
from mgdet.evaluation.evaluate import evaluate
from mgdet.evaluation.misalignment import misaligned_detections, misalignment_rate
from mgdet.evaluation.result import EvalResult, json_safe, load_eval_json, save_eval_json
from mgdet.evaluation.voc07 import voc07_ap

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "EvalResult",
    "coco_gt_dict",
    "coco_results",
    "evaluate",
    "json_safe",
    "load_eval_json",
    "misaligned_detections",
    "misalignment_rate",
    "pairwise_iou",
    "save_eval_json",
    "voc07_ap",
]

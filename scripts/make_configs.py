"""Write configs/{voc,coco}/*.yaml: one YAML per paper experiment (the authors' recipe).

.venv/bin/python scripts/make_configs.py     # rewrites the files; tests check they are up to date
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mgdet.strategies import STRATEGY_TABLE

#: The paper's four strategies (short name -> full name); ATSS and task-aligned are not in its grid.
STRATEGIES = {s.short: s.name for s in STRATEGY_TABLE if s.in_paper}
MODELS = [("fssd", "resnet18"), ("fssd", "vgg16"), ("retinanet", "resnet18"), ("retinanet", "vgg16"),
          ("rfbnet", "vgg16"), ("fcos", "resnet18"), ("fcos", "vgg16")]  # fmt: skip
SHORT = {"resnet18": "r18", "vgg16": "vgg16"}
DATA = {
    "voc": {"format": "voc", "root": "data/VOCdevkit", "train_split": "07+12/trainval", "val_split": "07/test",
            "input_size": 320, "num_workers": 8},
    "coco": {"format": "coco", "root": "data/coco", "train_ann": "annotations/instances_train2017.json",
             "train_images": "train2017", "val_ann": "annotations/instances_val2017.json",
             "val_images": "val2017", "input_size": 320, "num_workers": 8},
}  # fmt: skip
EPOCHS = {"voc": 250, "coco": 140}


def config(dataset: str, name: str, backbone: str, strategy: str) -> dict:
    return {
        "model": {"name": name, "backbone": backbone, "pretrained": "imagenet",
                  "width": 512 if name == "rfbnet" else 256},
        "data": dict(DATA[dataset]),
        "train": {"strategy": strategy, "sigma": 2.0, "epochs": EPOCHS[dataset], "batch_size": 32,
                  "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "warmup_iters": 500,
                  "schedule": "cosine", "min_lr": 1e-6, "eval_interval": 10},
        "loss": {"focal_alpha": 0.25, "focal_gamma": 1.0, "bl1_alpha": 0.5, "bl1_gamma": 1.5, "bl1_beta": 0.11},
        "eval": {"score_thresh": 0.005, "nms_iou": 0.5, "max_det": 300},
        "output_dir": f"runs/{dataset}/{name}_{SHORT[backbone]}_{strategy}",
    }  # fmt: skip


def all_configs() -> dict[str, str]:
    out = {}
    for dataset in ("voc", "coco"):
        for name, backbone in MODELS:
            for short, strategy in STRATEGIES.items():
                head = (f"# {dataset.upper()} {name} / {backbone} / {strategy}: the authors' recipe "
                        f"(ACCV 2020, Table {'1' if dataset == 'voc' else '2'}).\n")  # fmt: skip
                cfg = config(dataset, name, backbone, strategy)
                cfg["output_dir"] = f"runs/{dataset}/{name}_{SHORT[backbone]}_{short}"
                text = head + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, width=110)
                out[f"{dataset}/{name}_{SHORT[backbone]}_{short}.yaml"] = text
    return out


def main() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    for rel, text in all_configs().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(all_configs())} configs under {root}")


if __name__ == "__main__":
    main()

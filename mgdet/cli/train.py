"""``mgdet train CONFIG [KEY=VALUE ...]``: train a detector (DDP under torchrun)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from mgdet.cli.common import add_no_progress, print_table
from mgdet.errors import OutputError

SUMMARY_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "voc07_map50", "misalign")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` verb."""
    p = sub.add_parser("train", help="train a detector from a YAML config",
                       description="Train a detector. CONFIG is a YAML file (see configs/); KEY=VALUE pairs "
                       "override it, e.g. train.epochs=2 data.root=/data/VOCdevkit. Under torchrun the same "
                       "command trains with DDP.")  # fmt: skip
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (YAML values)")
    p.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue from a checkpoint; 'auto' = OUTPUT_DIR/last.pth, or start over a run there that "
        "stopped before its first checkpoint",
    )
    add_no_progress(p, "no progress bar (logs only)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mgdet.engine.config import load_config
    from mgdet.engine.train import train

    cfg = load_config(args.config, args.overrides)
    _protect_config_file(args.config, cfg)
    resume = args.resume
    if resume == "auto":
        last = Path(cfg.output_dir) / "last.pth"
        resume = str(last) if last.is_file() else None
    t0 = time.perf_counter()
    result = train(
        cfg,
        resume=resume,
        progress=not args.no_progress,
        tensorboard=not args.no_tensorboard,
        log=print,
        restart=args.resume == "auto",
    )
    if not result.history or int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 130 if result.interrupted else 0
    last = result.history[-1]
    rows = [
        ("output", str(result.output_dir)),
        ("epochs / steps", f"{last['epoch']} / {last['iter']}"),
        ("final loss (cls + reg)", f"{last.get('loss', float('nan')):.4f}"),
        ("skipped steps (non-finite)", str(sum(int(r.get("skipped_steps") or 0) for r in result.history))),
        ("wall time", f"{time.perf_counter() - t0:.1f} s"),
    ]
    rows += [(k, f"{result.final_metrics[k]:.4f}") for k in SUMMARY_METRICS if k in result.final_metrics]
    rows.append(("checkpoint", str(result.checkpoint)))
    print_table(rows, ["", "value"], "interrupted (resume with --resume auto)" if result.interrupted else None)
    return 130 if result.interrupted else 0


def _protect_config_file(config: str, cfg: Any) -> None:
    """Refuse when CONFIG is the run's own ``config.yaml`` and training would rewrite it with other content."""
    import yaml

    from mgdet.outputs import same_path

    target = Path(cfg.output_dir) / "config.yaml"
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    if target.exists() and same_path(config, target) and text != target.read_text(encoding="utf-8"):
        raise OutputError(
            f"{config} is the run's own config.yaml and the overrides would rewrite it; copy it elsewhere "
            "and train from the copy"
        )

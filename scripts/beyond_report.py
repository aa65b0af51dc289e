"""The results of issue 25 ("beyond the paper"): every rule and variant of the paper's rule on the CPU benchmark
recipe, from the finished runs' ``metrics.json`` -> ``docs/results/beyond_table.{md,json,png}``.

    .venv/bin/python scripts/beyond_report.py [--out docs/results/beyond_table] [--overwrite]

Runs are read from (a run = one ``metrics.json``, ``mgdet reproduce``'s layout):
- ``docs/results/h200_runs/runs/``: static IoU, Mutual Guidance (paper) and task-aligned, 3 seeds of RetinaNet and
  seed 0 of FSSD (``docs/results/assigners.md``; trained on an H200, AMP off);
- ``docs/results/beyond_runs/<rule>/``: the runs of issue 25 (config, history and metrics of each; for ``iou``,
  ``mg`` and ``tal`` the seeds the H200 did not train), trained on the project's CPUs with the commands in
  ``docs/results/beyond.md``;
- ``docs/results/beyond_runs/recorded.json``: finished runs whose files were lost with their machine, as published
  at the time (one decimal).
Paired differences use the seeds both rules have (same seed = same initialisation and data order).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
H200 = ROOT / "docs/results/h200_runs/runs"
BEYOND = ROOT / "docs/results/beyond_runs"
#: (key, label, where its runs are: globs under ROOT; a rule's recorded.json entries carry its key)
RULES = (
    ("iou", "static IoU (paper's baseline)", ("docs/results/h200_runs/runs/{det}_iou_s*", "{beyond}/iou/{det}_*")),
    ("mg", "Mutual Guidance (paper)", ("docs/results/h200_runs/runs/{det}_mg_s*", "{beyond}/mg/{det}_*")),
    ("tal", "task-aligned (TOOD)", ("docs/results/h200_runs/runs/{det}_tal_s*", "{beyond}/tal/{det}_*")),
    ("mgd", "MG, the authors' later rule (mgd)", ("{beyond}/mgd/{det}_*",)),
    ("mg_soft", "MG + soft target (mg_soft_target)", ("{beyond}/mg_soft/{det}_*",)),
    ("mg_aligned", "MG, L2C by p·u⁶ (mg_metric: aligned)", ("{beyond}/mg_aligned/{det}_*",)),
    ("mg_ramp", "MG, ramp from static (mg_ramp: 0.3)", ("{beyond}/mg_ramp/{det}_*",)),
    (
        "mg_aligned_shared",
        "MG p·u⁶, regression on its cls positives (mg_reg: cls)",
        ("{beyond}/mg_aligned_shared/{det}_*",),
    ),
    ("tal_c2l", "TAL labels + MG's C2L samples (tal_reg: c2l)", ("{beyond}/tal_c2l/{det}_*",)),
)
DETECTORS = {"retinanet_mbv2": "RetinaNet-MobileNetV2", "fssd_mbv2": "FSSD-MobileNetV2"}
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "misalign")


def load_runs() -> list[dict]:
    """Every finished run: detector, rule, seed, metrics (percent), training minutes, machine, source."""
    runs = []
    for det in DETECTORS:
        for key, _, patterns in RULES:
            globs = (p.format(det=det, beyond="docs/results/beyond_runs") + "/metrics.json" for p in patterns)
            for path in sorted(path for g in globs for path in ROOT.glob(g)):
                m = json.loads(path.read_text())
                machine = m.get("machine") or ("H200 GPU, AMP off" if path.is_relative_to(H200) else "unknown")
                runs.append({"detector": det, "rule": key, "seed": int(m["seed"]),
                             "metrics": {k: 100 * float(m["metrics"][k]) for k in METRICS},
                             "train_min": float(m["train_time_s"]) / 60, "machine": machine,
                             "source": str(path.parent.relative_to(ROOT))})  # fmt: skip
    recorded = BEYOND / "recorded.json"
    if recorded.exists():
        for r in json.loads(recorded.read_text())["runs"]:
            runs.append({**r, "source": "recorded.json: " + r.get("note", "")})
    return runs


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {std:.1f}"


def _paired(runs: list[dict], det: str, rule: str, ref: str, metric: str) -> tuple[float | None, list[str]]:
    mine = {r["seed"]: r["metrics"][metric] for r in runs if r["detector"] == det and r["rule"] == rule}
    base = {r["seed"]: r["metrics"][metric] for r in runs if r["detector"] == det and r["rule"] == ref}
    seeds = sorted(set(mine) & set(base))
    diffs = [mine[s] - base[s] for s in seeds]
    return (statistics.mean(diffs) if diffs else None), [f"s{s} {d:+.1f}" for s, d in zip(seeds, diffs)]


def report(runs: list[dict], out: Path) -> None:
    labels = {k: label for k, label, _ in RULES}
    lines = ["# Beyond the paper (issue 25): rules and variants on the CPU benchmark recipe", "",
             "Made by `.venv/bin/python scripts/beyond_report.py` from the runs listed in its docstring (mean ± std "
             "over seeds, %). Recipe: `configs/benchmark/<detector>_<rule>.yaml` (RetinaNet / FSSD on MobileNetV2, "
             "256 px, 32 epochs of 1,024 images, AdamW), mgdet's losses.", ""]  # fmt: skip
    summary: dict = {}
    for det, det_label in DETECTORS.items():
        rows = [r for r in runs if r["detector"] == det]
        if not rows:
            continue
        lines += [f"## {det_label}", "",
                  "| rule | seeds | " + " | ".join(METRICS) + " | training min (per machine) | machine |",
                  "|---|---:|" + "---:|" * len(METRICS) + "---:|---|"]  # fmt: skip
        for key, label, _ in RULES:
            cell = [r for r in rows if r["rule"] == key]
            if not cell:
                continue
            stats = {m: _mean_std([r["metrics"][m] for r in cell]) for m in METRICS}
            machines = sorted({r["machine"].split(",")[0] for r in cell})
            minutes = "; ".join(f"{statistics.mean(r['train_min'] for r in cell if r['machine'].startswith(m)):.0f}"
                                for m in machines)  # fmt: skip
            seeds = ",".join(str(s) for s in sorted(r["seed"] for r in cell))
            lines.append(f"| {label} | {seeds} | " + " | ".join(stats[m] for m in METRICS)
                         + f" | {minutes} | {'; '.join(machines)} |")  # fmt: skip
            summary.setdefault(det, {})[key] = {m: statistics.mean(r["metrics"][m] for r in cell) for m in METRICS}
        for ref in ("mg", "tal"):
            lines += ["", f"Paired differences against {labels[ref]} (same seeds; per seed in brackets):", "",
                      "| rule | ΔAP | ΔAP75 | Δmisalign |", "|---|---|---|---|"]  # fmt: skip
            for key, label, _ in RULES:
                if key == ref or not any(r["rule"] == key for r in rows):
                    continue
                cells = []
                for metric in ("AP", "AP75", "misalign"):
                    mean, per_seed = _paired(runs, det, key, ref, metric)
                    cells.append("-" if mean is None else f"{mean:+.1f} ({', '.join(per_seed)})")
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"runs": runs, "means": summary}, indent=1) + "\n")
    _chart(runs, out.with_suffix(".png"))


def _chart(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dets = [d for d in DETECTORS if any(r["detector"] == d for r in runs)]
    fig, axes = plt.subplots(1, len(dets), figsize=(7 * len(dets), 4.5), squeeze=False)
    for ax, det in zip(axes[0], dets):
        keys = [k for k, _, _ in RULES if any(r["detector"] == det and r["rule"] == k for r in runs)]
        for j, metric in enumerate(("AP", "AP75")):
            vals = [[r["metrics"][metric] for r in runs if r["detector"] == det and r["rule"] == k] for k in keys]
            means = [statistics.mean(v) for v in vals]
            errs = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in vals]
            xs = [i + (j - 0.5) * 0.38 for i in range(len(keys))]
            ax.bar(xs, means, 0.38, yerr=errs, capsize=3, label=metric)
            for x, v in zip(xs, vals):
                ax.plot([x] * len(v), v, "k.", markersize=4)
        ax.set_xticks(range(len(keys)), keys, rotation=30, ha="right")
        shown = [r["metrics"][m] for r in runs if r["detector"] == det for m in ("AP", "AP75")]
        ax.set_ylim(5 * (min(shown) // 5) - 5, 5 * (max(shown) // 5) + 5)
        ax.set_ylabel("% on the validation split (dots: seeds)")
        ax.set_title(DETECTORS[det])
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/beyond_table",
                    help="output path without suffix (.md, .json and .png are written)")  # fmt: skip
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier table at --out")
    args = ap.parse_args()
    earlier = [p for p in (args.out.with_suffix(s) for s in (".md", ".json", ".png")) if p.exists()]
    if earlier and not args.overwrite:
        raise SystemExit(f"{earlier[0]} exists: pass --overwrite to replace the earlier table, or another --out")
    runs = load_runs()
    if not runs:
        raise SystemExit("no finished run found (see the docstring for where runs are read from)")
    report(runs, args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()

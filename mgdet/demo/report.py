"""Tables, figures and markdown for ``mgdet demo`` and ``mgdet reproduce`` (matplotlib Agg, files only).

Metrics are stored as fractions and shown as percentages (AP points), as in the paper's tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mgdet.demo.recipe import DETECTOR_TITLES, STRATEGY_ABBR, STRATEGY_TITLES
from mgdet.demo.runner import RunRecord, deltas, summarize
from mgdet.engine.table import format_table
from mgdet.evaluation.result import json_safe
from mgdet.strategies import STRATEGY_TABLE

#: Columns of the demo table: (header, metric key, scale).
DEMO_COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("AP", "AP", 100.0), ("AP50", "AP50", 100.0), ("AP75", "AP75", 100.0), ("APs", "APs", 100.0),
    ("APm", "APm", 100.0), ("APl", "APl", 100.0), ("misalign %", "misalign", 100.0),
)  # fmt: skip
#: Detections drawn in the report's side-by-side panels have at least this score.
SHOW_SCORE = 0.2
#: Short labels of the strategies in difference rows (a view of :data:`mgdet.strategies.STRATEGY_TABLE`).
SHORT = {s.name: s.label for s in STRATEGY_TABLE}
#: Colours per strategy (Okabe-Ito), fixed so every figure agrees.
STRATEGY_COLOURS = {"iou": "#999999", "localize_to_classify": "#56B4E9", "classify_to_localize": "#E69F00",
                    "mutual_guidance": "#009E73", "atss": "#CC79A7", "task_aligned": "#D55E00"}  # fmt: skip


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight", facecolor="white")
    fig.clear()
    return path


def pm(mean: float, std: float, digits: int = 1) -> str:
    """``"52.1 ± 0.3"``; ``"-"`` for NaN."""
    if mean is None or not math.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if math.isfinite(std) else f"{mean:.{digits}f}"


def signed(x: float, digits: int = 1) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:+.{digits}f}"


# ------------------------------------------------------------------------------------------------ demo
def demo_rows(records: Sequence[RunRecord]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the demo table: one row per run, metrics in %, train time in seconds."""
    headers = ["strategy", *(c[0] for c in DEMO_COLUMNS), "train time"]
    rows = []
    for r in records:
        cells: list[Any] = [STRATEGY_TITLES.get(r.strategy, r.strategy)]
        cells += [r.metrics.get(k, math.nan) * s for _, k, s in DEMO_COLUMNS]
        cells.append(f"{r.train_time_s / 60:.1f} min" if r.train_time_s >= 60 else f"{r.train_time_s:.0f} s")
        rows.append(cells)
    if len(records) == 2:
        a, b = records
        label = f"{SHORT.get(b.strategy, b.strategy)} − {SHORT.get(a.strategy, a.strategy)}"
        diff = [label] + [(b.metrics.get(k, math.nan) - a.metrics.get(k, math.nan)) * s
                                             for _, k, s in DEMO_COLUMNS] + ["-"]  # fmt: skip
        rows.append(diff)
    return headers, rows


def plot_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> Figure:
    """A table rendered as a figure (for the report's PNG)."""
    cells = [
        [(f"{v:.1f}" if math.isfinite(v) else "-") if isinstance(v, float) else str(v) for v in row] for row in rows
    ]
    fig = Figure(figsize=(1.2 + 1.05 * len(headers), 0.6 + 0.42 * (len(rows) + 1)))
    ax = fig.add_subplot()
    ax.set_axis_off()
    table = ax.table(cellText=cells, colLabels=list(headers), loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.4)
    for (r, _c), cell in table.get_celld().items():
        if r == 0:
            cell.set_facecolor("#E8E8E8")
            cell.set_text_props(weight="bold")
    table.auto_set_column_width(list(range(len(headers))))
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_curves_compare(histories: Mapping[str, Mapping[str, np.ndarray]], title: str = "") -> Figure:
    """Training curves of several runs overlaid: loss, val AP and AP75, positives per GT, disagreement."""
    panels = (("training loss", ("loss",)), ("validation AP (%)", ("AP",)), ("validation AP75 (%)", ("AP75",)),
              ("cls / reg positives per GT", ("pos_cls_per_gt", "pos_reg_per_gt")),
              ("cls / reg label disagreement", ("disagree",)), ("learning rate", ("lr",)))  # fmt: skip
    fig = Figure(figsize=(13.0, 6.5))
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.08, top=0.9, wspace=0.25, hspace=0.38)
    axes = fig.subplots(2, 3).reshape(-1)
    palette = ["#999999", "#009E73", "#56B4E9", "#E69F00", "#CC79A7", "#0072B2"]
    for ax, (name, cols) in zip(axes, panels):
        for i, (label, h) in enumerate(histories.items()):
            epoch = np.asarray(h.get("epoch", []), dtype=float)
            for j, col in enumerate(cols):
                y = np.asarray(h.get(col, np.full(len(epoch), np.nan)), dtype=float)
                if col in ("AP", "AP75"):
                    y = y * 100
                ok = np.isfinite(y)
                if not ok.any():
                    continue
                ax.plot(epoch[ok], y[ok], color=palette[i % len(palette)], ls="-" if j == 0 else "--", lw=1.8,
                        marker="o" if ok.sum() < len(y) or ok.sum() == 1 else None, ms=4,
                        label=label if len(cols) == 1 else f"{label} {col}")  # fmt: skip
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def write_demo_report(
    records: Sequence[RunRecord],
    out_dir: str | Path,
    dataset: Any,
    num_images: int = 4,
    info: Mapping[str, Any] | None = None,
    per_run_curves: bool = True,
) -> dict[str, Path]:
    """Write ``report.md``, ``table.png``, ``curves.png``, ``detections_<k>.png`` (and, with
    ``per_run_curves``, every curve of each run in ``curves_<abbr>.png``).

    ``dataset`` is the validation dataset (mgdet record dataset); the val images with the most objects
    among the first 60 are drawn, each through every run's final model.
    """
    from mgdet.engine.checkpoint import load_detector
    from mgdet.viz import plot_training_curves, read_history

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    headers, rows = demo_rows(records)
    files["table"] = _save(plot_table(headers, rows, "static IoU matching vs Mutual Guidance (val, %)"),
                           out / "table.png")  # fmt: skip
    histories = {}
    for r in records:
        hist_path = Path(r.run_dir) / "history.csv"
        if hist_path.is_file():
            h = read_history(hist_path)
            label = STRATEGY_TITLES.get(r.strategy, r.strategy)
            histories[label] = h
            abbr = STRATEGY_ABBR.get(r.strategy, r.strategy)
            if not per_run_curves:
                continue
            files[f"curves_{abbr}"] = _save(plot_training_curves(h, f"{r.run_id}: all curves"),
                                            out / f"curves_{abbr}.png")  # fmt: skip
    files["curves"] = _save(plot_curves_compare(histories, "training curves"), out / "curves.png")
    files.update(_detection_panels(records, dataset, out, num_images, load_detector))

    lines = ["# mgdet demo: static IoU matching vs Mutual Guidance", ""]
    for k, v in (info or {}).items():
        lines.append(f"- **{k}**: {v}")
    lines += ["", "## Results (validation split, COCO metrics in %)", "",
              format_table(rows, headers, style="markdown", float_fmt=".1f"), "",
              "The misalignment rate is the fraction of kept detections (score >= 0.05) for which NMS removed a "
              "candidate of the same class with a better IoU to the object: well classified but poorly "
              "localised boxes that survive. Lower is better.", "",
              "![table](table.png)", "", "## Training curves", "", "![curves](curves.png)", ""]  # fmt: skip
    for r in records:
        abbr = STRATEGY_ABBR.get(r.strategy, r.strategy)
        if f"curves_{abbr}" in files:
            lines += [f"![{abbr} curves](curves_{abbr}.png)", ""]
    lines += [f"## Detections on validation images (score >= {SHOW_SCORE}, NMS 0.5)", ""]
    lines += [f"![detections]({p.name})" for k, p in sorted(files.items()) if k.startswith("detections")]
    lines += ["", "Runs: " + ", ".join(f"`{r.run_dir}`" for r in records), ""]
    files["report"] = out / "report.md"
    files["report"].write_text("\n".join(lines), encoding="utf-8")
    return files


def _detection_panels(records, dataset, out: Path, num_images: int, load_detector) -> dict[str, Path]:
    """Ground truth and every run's detections on the busiest validation images."""
    import torch

    from mgdet.data import EvalTransform
    from mgdet.viz import plot_detections, run_detector

    if num_images <= 0 or len(dataset) == 0:
        return {}
    models = []
    for r in records:
        ckpt = Path(r.run_dir) / "last.pth"
        if ckpt.is_file():
            det, _ = load_detector(ckpt, map_location="cpu")
            models.append((STRATEGY_TITLES.get(r.strategy, r.strategy), det))
    if not models:
        return {}
    size = models[0][1].input_size
    size = size if isinstance(size, int) else int(size[0])
    tf = EvalTransform(size)
    candidates = range(min(len(dataset), 60))
    counts = [(len(dataset[i][1]["labels"]), -i) for i in candidates]
    chosen = [-i for _, i in sorted(counts, reverse=True)[:num_images]]
    names = list(getattr(dataset, "class_names", []) or []) or None
    files = {}
    for k, idx in enumerate(sorted(chosen), 1):
        image, target = dataset[idx]
        tensor, boxes, labels = tf(image, np.asarray(target["boxes"], np.float32), np.asarray(target["labels"]))
        dets = [run_detector(det, tensor, score_thresh=SHOW_SCORE) for _, det in models]
        fig = plot_detections(tensor, {"boxes": torch.as_tensor(boxes), "labels": torch.as_tensor(labels)}, dets,
                              [t for t, _ in models], names)  # fmt: skip
        files[f"detections_{k}"] = _save(fig, out / f"detections_{k}.png")
    return files


# ------------------------------------------------------------------------------------------- reproduce
def paper_table(summary: Sequence[Mapping[str, Any]], keys: Sequence[str] = ("AP", "AP50", "AP75")) -> list[list[str]]:
    """Rows in the layout of the paper's Table 1: model (first row of its group), strategy, mean ± std (%)."""
    rows, last = [], None
    for s in summary:
        model = DETECTOR_TITLES.get(s["detector"], s["detector"])
        row = [model if model != last else "", STRATEGY_TITLES.get(s["strategy"], s["strategy"])]
        row += [pm(100 * s["mean"][k], 100 * s["std"][k]) for k in keys]
        rows.append(row)
        last = model
    return rows


def plot_bars(summary: Sequence[Mapping[str, Any]], keys: Sequence[str] = ("AP", "AP50", "AP75")) -> Figure:
    """Grouped bars (mean ± std over seeds) per detector and strategy, one panel per metric."""
    detectors = list(dict.fromkeys(s["detector"] for s in summary))
    strategies = [k for k in STRATEGY_ABBR if any(s["strategy"] == k for s in summary)]
    fig = Figure(figsize=(4.2 * len(keys), 3.8), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    width = 0.8 / max(len(strategies), 1)
    for ax, key in zip(axes, keys):
        for j, strat in enumerate(strategies):
            xs, ms, ss = [], [], []
            for i, d in enumerate(detectors):
                for s in summary:
                    if s["detector"] == d and s["strategy"] == strat:
                        xs.append(i + (j - (len(strategies) - 1) / 2) * width)
                        ms.append(100 * s["mean"][key])
                        ss.append(100 * s["std"][key])
            if xs:
                bars = ax.bar(xs, ms, width * 0.95, yerr=ss, capsize=3, color=STRATEGY_COLOURS.get(strat, "#0072B2"),
                              label=STRATEGY_TITLES.get(strat, strat))  # fmt: skip
                ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        ax.set_xticks(range(len(detectors)), [DETECTOR_TITLES.get(d, d) for d in detectors], fontsize=8)
        ax.set_ylim(0.0, None)  # bars start at zero: a cut axis would make small differences look large
        ax.set_title(f"{key} (%, mean ± std over seeds)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    return fig


def grid_markdown(
    records: Sequence[RunRecord],
    info: Mapping[str, Any],
    claim: tuple[float, float] = (1.5, 2.0),
    chart: str | None = "results.png",
) -> str:
    """``results.md``: paper-layout table (mean ± std), MG − IoU deltas, the claim check, other metrics, runs."""
    summary = summarize(records)
    dl = deltas(records)
    lines = ["# Table 1 ablation on " + str(info.get("dataset", "the benchmark")), ""]
    for k, v in info.items():
        lines.append(f"- **{k}**: {v}")
    lines += ["", "## AP on the validation split (%, mean ± std over seeds)", "",
              format_table(paper_table(summary), ["Model", "Matching strategy", "AP", "AP50", "AP75"],
                           style="markdown", align=["l", "l", "r", "r", "r"]), ""]  # fmt: skip
    if dl:
        rows = []
        for d in dl:
            rows.append([DETECTOR_TITLES.get(d["detector"], d["detector"]),
                         f"{SHORT.get(d['strategy'], d['strategy'])} − IoU",
                         *(f"{signed(d['mean'][k])} (± {d['paired_std'][k]:.1f})" for k in ("AP", "AP50", "AP75")),
                         signed(d["mean"]["misalign"]), len(d["paired_seeds"])])  # fmt: skip
        lines += ["## Differences to static IoU matching (AP points)", "",
                  "Mean difference; in brackets the std of the per-seed paired differences.", "",
                  format_table(rows, ["Model", "", "ΔAP", "ΔAP50", "ΔAP75", "Δmisalign %", "seeds"],
                               style="markdown", align=["l", "l", "r", "r", "r", "r", "r"]), ""]  # fmt: skip
        mg = [d for d in dl if d["strategy"] == "mutual_guidance"]
        if mg:
            lines += [f"## Claim: MG − IoU ≥ +{claim[0]} AP and ≥ +{claim[1]} AP75 (mean over seeds)", ""]
            for d in mg:
                ok = d["mean"]["AP"] >= claim[0] and d["mean"]["AP75"] >= claim[1]
                lines.append(f"- {DETECTOR_TITLES.get(d['detector'], d['detector'])}: ΔAP {signed(d['mean']['AP'])}, "
                             f"ΔAP75 {signed(d['mean']['AP75'])} → **{'holds' if ok else 'not met'}**")  # fmt: skip
            lines.append("")
    keys = ("APs", "APm", "APl", "misalign")
    other = [[DETECTOR_TITLES.get(s["detector"], s["detector"]), STRATEGY_TITLES.get(s["strategy"], s["strategy"]),
              *(pm(100 * s["mean"][k], 100 * s["std"][k]) for k in keys),
              f"{s['mean']['train_time_s'] / 60:.1f}", s["n"]] for s in summary]  # fmt: skip
    lines += ["## Other metrics", "", format_table(other, ["Model", "Matching strategy", "APs", "APm", "APl",
                                                            "misalign %", "train min", "seeds"],
                                                   style="markdown", align=["l", "l"] + ["r"] * 6), ""]  # fmt: skip
    if chart:
        lines += [f"![AP, AP50, AP75 per model and strategy]({chart})", ""]
    stats = assignment_rows(records)
    if stats:
        lines += ["## Assignment statistics per epoch (training, mean over seeds)", "",
                  "Positives per ground-truth box for classification and regression, the fraction of anchors "
                  "whose classification and regression labels disagree, the median class score (sigmoid of the "
                  "GT class) of classification positives — the p of IoU_amplified —, learning rate and losses "
                  "(from each run's history.csv).", "",
                  format_table(stats, ["Model", "strategy", "epoch", "pos cls/GT", "pos reg/GT", "disagree %",
                                       "pos p median", "lr", "loss cls", "loss reg", "val AP"], style="markdown",
                               align=["l", "l"] + ["r"] * 9), ""]  # fmt: skip
    runs = [[r.run_id, *(f"{100 * r.metrics.get(k, math.nan):.2f}" for k in ("AP", "AP50", "AP75", "misalign")),
             _fmt(r.extra.get("pos_score_median")), f"{r.train_time_s:.0f}", f"{r.wall_time_s:.0f}", r.iters]
            for r in records]  # fmt: skip
    lines += ["## Individual runs", "", "pos p median: the last epoch's median class score of classification "
              "positives; wall s: training + evaluation.", "",
              format_table(runs, ["run", "AP", "AP50", "AP75", "misalign %", "pos p median", "train s", "wall s",
                                  "steps"], style="markdown"), ""]  # fmt: skip
    return "\n".join(lines)


def _fmt(x: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals, ``-`` for a missing one."""
    return "-" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}f}"


def assignment_rows(records: Sequence[RunRecord]) -> list[list[Any]]:
    """Per detector, strategy and epoch: history.csv columns averaged over the seeds that have them."""
    import csv

    acc: dict[tuple[str, str, int], dict[str, list[float]]] = {}
    cols = ("pos_cls_per_gt", "pos_reg_per_gt", "disagree", "pos_score_median", "lr", "loss_cls", "loss_reg", "AP")
    for r in records:
        path = Path(r.run_dir) / "history.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                cell = acc.setdefault((r.detector, r.strategy, int(float(row["epoch"]))), {c: [] for c in cols})
                for c in cols:
                    if row.get(c) not in (None, ""):
                        cell[c].append(float(row[c]))
    out = []
    for (detector, strategy, epoch), cell in acc.items():
        m = {c: (sum(v) / len(v) if v else math.nan) for c, v in cell.items()}
        out.append([DETECTOR_TITLES.get(detector, detector), STRATEGY_ABBR.get(strategy, strategy), epoch,
                    f"{m['pos_cls_per_gt']:.2f}", f"{m['pos_reg_per_gt']:.2f}", f"{100 * m['disagree']:.2f}",
                    _fmt(m["pos_score_median"]),
                    f"{m['lr']:.2e}", f"{m['loss_cls']:.3f}", f"{m['loss_reg']:.3f}",
                    "-" if not math.isfinite(m["AP"]) else f"{100 * m['AP']:.1f}"])  # fmt: skip
    return out


NOTES_MARKER = "<!-- notes: everything from this line on is kept when mgdet reproduce rewrites this file -->"


def kept_notes(md_path: Path) -> str:
    """The hand-written tail of an existing results file (from ``NOTES_MARKER`` on), or ``""``."""
    if not md_path.is_file():
        return ""
    text = md_path.read_text(encoding="utf-8")
    i = text.find(NOTES_MARKER)
    return text[i:] if i >= 0 else ""


def write_grid_results(
    records: Sequence[RunRecord],
    out_dir: str | Path,
    info: Mapping[str, Any],
    stem: str = "results",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` (bar chart) into ``out_dir``.

    Hand-written notes in an existing ``<stem>.md`` after ``NOTES_MARKER`` are carried over.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(records)
    payload = {"info": dict(info), "summary": summary, "deltas": deltas(records),
               "runs": [r.to_dict() for r in records], **dict(extra or {})}  # fmt: skip
    files = {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    files["json"].write_text(json.dumps(json_safe(payload), indent=1, default=str), encoding="utf-8")
    chart = None
    if summary:
        files["png"] = _save(plot_bars(summary), out / f"{stem}.png")
        chart = files["png"].name
    notes = kept_notes(files["md"])
    text = grid_markdown(records, info, chart=chart)
    files["md"].write_text(text + ("\n" + notes if notes else ""), encoding="utf-8")
    return files

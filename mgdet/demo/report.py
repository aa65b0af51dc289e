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

from mgdet.catalog import as_hw
from mgdet.demo.recipe import DETECTOR_TITLES, STRATEGY_ABBR, STRATEGY_TITLES
from mgdet.demo.runner import RunRecord, deltas, summarize
from mgdet.evaluation.result import json_safe
from mgdet.strategies import STRATEGY_TABLE
from mgdet.utils.table import format_table

#: Columns of the demo table: (header, metric key, scale).
DEMO_COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("AP", "AP", 100.0), ("AP50", "AP50", 100.0), ("AP75", "AP75", 100.0), ("APs", "APs", 100.0),
    ("APm", "APm", 100.0), ("APl", "APl", 100.0), ("misalign %", "misalign", 100.0),
)  # fmt: skip
#: How the demo names the two rules it compares.
DEMO_TITLES = {**STRATEGY_TITLES, "iou": "static IoU matching"}
#: Detections drawn in the report's side-by-side panels have at least this score (a trained detector's
#: confident detections; the metrics use every detection above the paper's 0.005).
SHOW_SCORE = 0.4
#: The report draws validation images with at most this many objects (typical scenes, not the most crowded).
SHOW_MAX_OBJECTS = 4
#: Short labels of the strategies in difference rows (a view of :data:`mgdet.strategies.STRATEGY_TABLE`).
SHORT = {s.name: s.label for s in STRATEGY_TABLE}
#: Colours per strategy (Okabe-Ito), fixed so every figure agrees.
STRATEGY_COLOURS = {"iou": "#999999", "localize_to_classify": "#56B4E9", "classify_to_localize": "#E69F00",
                    "mutual_guidance": "#009E73", "atss": "#CC79A7", "task_aligned": "#D55E00",
                    "mutual_guidance_dynamic": "#0072B2"}  # fmt: skip


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
        cells: list[Any] = [DEMO_TITLES.get(r.strategy, r.strategy)]
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


def zoo_rows(evals: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the zoo table: the shipped detectors evaluated now (%) and the AP recorded when they
    were shipped; with two detectors a difference row (second − first)."""
    headers = ["zoo detector", *(c[0] for c in DEMO_COLUMNS), "AP when shipped"]
    rows = []
    for e in evals:
        cells: list[Any] = [f"{DEMO_TITLES.get(e.strategy, e.strategy)} (zoo:{e.name})"]
        cells += [e.metrics.get(k, math.nan) * s for _, k, s in DEMO_COLUMNS]
        cells += [100 * e.shipped_ap]
        rows.append(cells)
    if len(evals) == 2:
        a, b = evals
        label = f"{SHORT.get(b.strategy, b.strategy)} − {SHORT.get(a.strategy, a.strategy)}"
        rows.append([label, *((b.metrics.get(k, math.nan) - a.metrics.get(k, math.nan)) * s
                              for _, k, s in DEMO_COLUMNS), 100 * (b.shipped_ap - a.shipped_ap)])  # fmt: skip
    return headers, rows


def headline(evals: Sequence[Any]) -> str:
    """The report's first line: what Mutual Guidance does, from the live evaluation of the zoo pair."""
    if len(evals) != 2:
        return ""
    a, b = evals

    def cmp(key: str, name: str, unit: str = "") -> str:
        x, y = 100 * b.metrics.get(key, math.nan), 100 * a.metrics.get(key, math.nan)
        return f"{name}{' ' if name else ''}{x:.1f}{unit} vs {y:.1f}{unit} ({signed(x - y)})"

    return (f"{DEMO_TITLES.get(b.strategy, b.strategy)} vs {DEMO_TITLES.get(a.strategy, a.strategy)}, the same "
            f"RetinaNet-MobileNetV2 trained with the same recipe and seed, evaluated now: {cmp('AP', 'AP')}, "
            f"{cmp('AP75', 'AP75')}, {cmp('AP50', 'AP50')}; "
            f"misaligned detections {cmp('misalign', '', ' %')}")  # fmt: skip


def plot_curves_over_zoo(
    zoo: Mapping[str, tuple[str, Mapping[str, np.ndarray]]],
    live: Mapping[str, tuple[str, Mapping[str, np.ndarray]]],
    title: str = "",
) -> Figure:
    """Training loss and validation AP per epoch: the zoo runs' full curves (thin) under the live runs (thick,
    markers). ``zoo`` / ``live``: ``{label: (strategy, history)}``."""
    fig = Figure(figsize=(11.0, 4.0))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.86, wspace=0.22)
    axes = fig.subplots(1, 2)
    for ax, (col, name, scale) in zip(axes, (("loss", "training loss", 1.0), ("AP", "validation AP (%)", 100.0))):
        for runs, thick in ((zoo, False), (live, True)):
            for label, (strategy, h) in runs.items():
                epoch = np.asarray(h.get("epoch", []), dtype=float)
                y = np.asarray(h.get(col, np.full(len(epoch), np.nan)), dtype=float) * scale
                ok = np.isfinite(y)
                if ok.any():
                    ax.plot(epoch[ok], y[ok], color=STRATEGY_COLOURS.get(strategy, "#0072B2"),
                            lw=2.6 if thick else 1.2, alpha=1.0 if thick else 0.6, ls="-" if thick else "--",
                            marker="o" if thick or ok.sum() < len(y) else None, ms=5 if thick else 3,
                            label=label)  # fmt: skip
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch (1024 images)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def write_demo_report(
    evals: Sequence[Any],
    records: Sequence[RunRecord],
    dataset: Any,
    out_dir: str | Path,
    info: Mapping[str, Any] | None = None,
    live_label: str = "",
    num_images: int = 4,
) -> dict[str, Path]:
    """Write ``report.md`` with ``table.png``, ``detections_<k>.png`` (the zoo pair side by side),
    ``misalignment.png`` and ``curves.png`` (live runs over the zoo runs' curves) into ``out_dir``.

    ``evals``: :class:`mgdet.demo.live.ZooEval` (computed now); ``records``: the live training runs (may be
    empty); ``dataset``: the validation split the zoo was evaluated on; ``info``: lines under the headline.
    """
    from mgdet.viz import read_history

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    zh, zr = zoo_rows(evals)
    files["table"] = _save(plot_table(zh, zr, "trained detectors from the zoo, evaluated now (val, %)"),
                           out / "table.png")  # fmt: skip
    files.update(_detection_panels([(DEMO_TITLES.get(e.strategy, e.strategy), e.detector) for e in evals],
                                   dataset, out, num_images))  # fmt: skip
    pic = _misalignment_picture(evals, dataset, out)
    if pic is not None:
        files["misalignment"] = pic
    zoo_hist, live_hist = {}, {}
    for e in evals:
        path = Path(e.manifest.get("_dir", "")) / "history.csv"
        if path.is_file():
            zoo_hist[f"zoo: {DEMO_TITLES.get(e.strategy, e.strategy)} (shipped, {e.manifest.get('epochs')} ep)"] = (
                e.strategy,
                read_history(path),
            )
    for r in records:
        path = Path(r.run_dir) / "history.csv"
        if path.is_file():
            live_hist[f"now: {DEMO_TITLES.get(r.strategy, r.strategy)} ({r.epochs} ep)"] = (
                r.strategy,
                read_history(path),
            )
    if zoo_hist or live_hist:
        files["curves"] = _save(
            plot_curves_over_zoo(
                zoo_hist, live_hist, "live runs (thick) over the zoo runs' full training (thin, shipped history.csv)"
            ),
            out / "curves.png",
        )

    lines = ["# mgdet demo: static IoU matching vs Mutual Guidance", ""]
    head = headline(evals)
    if head:
        lines += [f"**{head}.**", ""]
    for k, v in (info or {}).items():
        lines.append(f"- **{k}**: {v}")
    lines += ["", "## Trained detectors from the zoo, evaluated now", "",
              format_table(zr, zh, style="markdown", float_fmt=".1f"), "",
              "Every number in this table except *AP when shipped* was computed by this demo on the validation "
              "split; *AP when shipped* is the manifest's, measured when the zoo was packed, for comparison. "
              "The misalignment rate is the share of kept detections (score >= 0.05) that are poorly localized "
              "(IoU < 0.5 with every object of their class) while a lower-scored candidate of the same class "
              "(before NMS) had IoU >= 0.75: well classified, badly placed boxes that survive. Lower is better.",
              "", "![table](table.png)", "",
              f"## Detections on validation images (score >= {SHOW_SCORE}, NMS 0.5)", ""]  # fmt: skip
    lines += [f"![detections]({p.name})" for k, p in sorted(files.items()) if k.startswith("detections")]
    if "misalignment" in files:
        lines += ["", "## Misaligned detections (the paper's Section 3.3)", "",
                  "The validation images where static IoU matching kept its highest-scored misaligned detections, "
                  "through both detectors (the three highest-scored per panel): in orange the detection NMS kept "
                  "(poorly localized), dashed green the best-localized lower-scored candidate of the same class "
                  "before NMS.",
                  "", "![misalignment](misalignment.png)"]  # fmt: skip
    lines += [""]
    if records:
        headers, rows = demo_rows(records)
        lines += [f"## Trained now: {live_label}", "", format_table(rows, headers, style="markdown", float_fmt=".1f"),
                  "", "Runs: " + ", ".join(f"`{r.run_dir}`" for r in records), ""]  # fmt: skip
    if "curves" in files:
        lines += ["## Training curves", "", "![curves](curves.png)", ""]
    files["report"] = out / "report.md"
    files["report"].write_text("\n".join(lines), encoding="utf-8")
    return files


def _shown_images(dataset: Any, count: int, candidates: int = 60) -> list[int]:
    """Indices of the validation images drawn in the report, chosen from the annotations only (never from the
    detections): among the first ``candidates``, those with a large object (side >= 96 px), then the most objects
    up to :data:`SHOW_MAX_OBJECTS`, the lower index on a tie; returned in index order."""
    keys = []
    for i in range(min(len(dataset), candidates)):
        boxes = np.asarray(dataset.target(i)["boxes"], np.float32).reshape(-1, 4)
        large = bool((((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) >= 96 * 96).any())
        keys.append((large, len(boxes) <= SHOW_MAX_OBJECTS, len(boxes), -i))
    return sorted(-k[3] for k in sorted(keys, reverse=True)[:count])


def _detection_panels(models: Sequence[tuple[str, Any]], dataset, out: Path, num_images: int) -> dict[str, Path]:
    """Ground truth and every model's detections on the images of :func:`_shown_images` (network-input pixels)."""
    import torch

    from mgdet.data import EvalTransform
    from mgdet.viz import plot_detections, run_detector

    models = [(t, d) for t, d in models if d is not None]
    if num_images <= 0 or len(dataset) == 0 or not models:
        return {}
    size = models[0][1].input_size
    tf = EvalTransform(as_hw(size)[0])
    names = list(getattr(dataset, "class_names", []) or []) or None
    files = {}
    for k, idx in enumerate(_shown_images(dataset, num_images), 1):
        image, target = dataset[idx]
        tensor, boxes, labels = tf(image, np.asarray(target["boxes"], np.float32), np.asarray(target["labels"]))
        dets = [run_detector(det, tensor, score_thresh=SHOW_SCORE) for _, det in models]
        fig = plot_detections(tensor, {"boxes": torch.as_tensor(boxes), "labels": torch.as_tensor(labels)}, dets,
                              [t for t, _ in models], names)  # fmt: skip
        files[f"detections_{k}"] = _save(fig, out / f"detections_{k}.png")
    return files


def _misalignment_picture(evals: Sequence[Any], dataset: Any, out: Path, num_images: int = 3) -> Path | None:
    """``misalignment.png``: the images where the first detector (static IoU) kept its highest-scored misaligned
    detections, with every detector's misaligned detections on them (the highest-scored few; original pixels)."""
    from mgdet.viz.misalignment import plot_misalignment

    if not evals or len(dataset) == 0:
        return None
    index = {dataset.image_info(i)["image_id"]: i for i in range(len(dataset))}
    top: dict[Any, float] = {}  # image -> highest score of a misaligned detection of the first detector
    for ex in evals[0].misaligned:
        top[ex["image_id"]] = max(top.get(ex["image_id"], 0.0), ex["score"])
    chosen = [iid for iid, _ in sorted(top.items(), key=lambda kv: (-kv[1], str(kv[0])))[:num_images]]
    chosen = [iid for iid in chosen if iid in index]
    if not chosen:
        return None
    images, gts, examples = [], [], []
    for iid in chosen:
        image, target = dataset[index[iid]]
        images.append(image)
        gts.append(target)
        examples.append([sorted((x for x in e.misaligned if x["image_id"] == iid), key=lambda x: -x["score"])
                         for e in evals])  # fmt: skip
    titles = [f"{DEMO_TITLES.get(e.strategy, e.strategy)}: {100 * e.metrics.get('misalign', math.nan):.1f} % "
              "misaligned" for e in evals]  # fmt: skip
    names = list(getattr(dataset, "class_names", []) or []) or None
    return _save(plot_misalignment(images, gts, examples, titles, names), out / "misalignment.png")


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

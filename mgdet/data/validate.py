"""``check_dataset``: every problem of a dataset at once (the ``mgdet data check ROOT`` verb).

It builds the loader with ``on_error="skip"`` (so annotation problems are collected, not raised),
then scans every image with a fast header-level check (:func:`~mgdet.data.image_io.probe_image`:
missing, zero-byte, truncated, non-image, size different from the annotation).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mgdet.catalog import DATA_FORMATS

from .coco import CocoDataset
from .errors import IMAGE, DatasetError, Problem
from .image_io import probe_image_info, read_image
from .records import RecordDataset
from .voc import VOC_CLASSES, VOCDataset, voc_datasets
from .yolo import YoloDataset

FORMATS = ("auto", *DATA_FORMATS)


@dataclass
class CheckReport:
    """What ``check_dataset`` found. ``ok`` is True when there are no errors and no broken images."""

    source: str
    format: str
    num_images: int = 0
    num_objects: int = 0
    num_ignored: int = 0
    class_histogram: dict[str, int] = field(default_factory=dict)
    repairs: Counter = field(default_factory=Counter)
    errors: list[Problem] = field(default_factory=list)
    broken_images: list[Problem] = field(default_factory=list)
    records: list = field(default_factory=list, repr=False)  # the parsed ImageRecords (for further checks)
    # images whose EXIF orientation tag is not 1 ("path (orientation N)"): mgdet shows them rotated, as a viewer
    # does, and their boxes must be annotated on that view (a warning, not a problem: see mgdet.data.image_io)
    exif_rotated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.broken_images

    @property
    def problems(self) -> list[Problem]:
        """Errors and broken images together."""
        return self.errors + self.broken_images

    def summary(self) -> str:
        """A plain-text table for the CLI."""
        lines = [
            f"dataset   {self.source} ({self.format})",
            f"images    {self.num_images}",
            f"objects   {self.num_objects} ({self.num_ignored} ignored)",
            "classes:",
        ]
        width = max([len(n) for n in self.class_histogram] + [5])
        lines += [f"  {n:<{width}}  {c}" for n, c in self.class_histogram.items()]
        if self.repairs:
            lines.append("repairs:")
            lines += [f"  {k:<{width}}  {v}" for k, v in sorted(self.repairs.items()) if v]
        lines.append(f"errors    {len(self.errors)}")
        lines += [f"  {p}" for p in self.errors]
        lines.append(f"broken images  {len(self.broken_images)}")
        lines += [f"  {p}" for p in self.broken_images]
        if self.exif_rotated:
            lines.append(
                f"warning: {len(self.exif_rotated)} image(s) carry an EXIF orientation tag; mgdet reads them rotated "
                "as a viewer shows them, so their boxes must be annotated on that view:"
            )
            lines += [f"  {p}" for p in self.exif_rotated[:10]]
            if len(self.exif_rotated) > 10:
                lines.append(f"  ... and {len(self.exif_rotated) - 10} more")
        lines.append("OK" if self.ok else "PROBLEMS FOUND")
        return "\n".join(lines)


def _read_classes(path: Path) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    return tuple(ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip())


def devkit_years(root: Path) -> list[str]:
    """The two-digit years of the ``VOC<year>`` folders of a VOCdevkit root (``["07", "12"]``), else []."""
    if not root.is_dir():
        return []
    found = sorted(d.name[3:] for d in root.glob("VOC[12][09][0-9][0-9]") if (d / "Annotations").is_dir())
    return [y[2:] for y in found]


def images_folder(root: Path, split: str | None) -> Path:
    """Where the images of a COCO or YOLO dataset folder live, one rule for every verb (train, eval, data check,
    visualize): ``root/JPEGImages`` (the benchmark's layout), else ``root/images/<split>``, else ``root/images``,
    else ``root/<split>`` (COCO's own ``train2017/`` beside ``annotations/``)."""
    candidates = [root / "JPEGImages"]
    if split:
        candidates.append(root / "images" / split)
    candidates.append(root / "images")
    if split:
        candidates.append(root / split)
    return next((c for c in candidates if c.is_dir()), root / "images")


def labels_folder(root: Path, split: str | None) -> Path:
    """Where the label files of a YOLO dataset folder live: ``root/labels/<split>``, else ``root/labels``."""
    if split and (root / "labels" / split).is_dir():
        return root / "labels" / split
    return root / "labels"


def open_dataset(
    root: str | Path,
    format: str = "auto",
    split: str | None = None,
    class_names: tuple[str, ...] | list[str] | None = None,
    on_error: str = "skip",
    ann: str | Path | None = None,
    images: str | Path | None = None,
) -> RecordDataset:
    """Build a loader for a dataset folder by layout: the one way every verb opens a dataset.

    ``ann`` (COCO json / YOLO label folder) and ``images`` (image folder) replace the default places
    (:func:`images_folder`, :func:`labels_folder`, ``annotations/instances_<split>.json``).

    - VOC (``Annotations/``): ``split`` (default: ``trainval``, else ``train``, else the first split
      file); classes from ``classes.txt`` if present, else VOC's 20.
    - COCO: ``root`` is the json file (images in ``JPEGImages/`` or ``images/`` beside it or one level up,
      else next to it) or a
      folder with ``annotations/instances_<split>.json`` and ``JPEGImages/`` (the benchmark layout).
    - YOLO (``labels/`` + ``images/``): classes from ``classes.txt`` (or ``class_names``).
    - a ``VOCdevkit`` (``VOC2007/``, ``VOC2012/``): ``split`` as in training (``"07+12/trainval"``; default:
      every year, ``trainval``); classes from the first year's ``classes.txt``, else VOC's 20.
    """
    root = Path(root)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    years = devkit_years(root)
    if format in ("auto", "voc") and years and not (root / "Annotations").is_dir():  # a VOCdevkit, as train takes
        ys, name = split.split("/", 1) if split and "/" in split else ("+".join(years), split or "trainval")
        first = root / f"VOC20{ys.split('+')[0].strip()[-2:]}"
        names = class_names or _read_classes(first / "classes.txt") or VOC_CLASSES
        return voc_datasets(root, ys, name, tuple(names), on_error=on_error)
    if format == "auto":
        if root.is_file() and root.suffix == ".json":
            format = "coco"
        elif (root / "Annotations").is_dir():
            format = "voc"
        elif (root / "labels").is_dir():
            format = "yolo"
        elif (root / "annotations").is_dir():
            format = "coco"
        else:
            raise DatasetError("cannot tell the dataset format (expected Annotations/, labels/ or a .json)", root)
    if format == "voc":
        names = class_names or _read_classes(root / "classes.txt") or VOC_CLASSES
        if split is None:
            main = root / "ImageSets" / "Main"
            split = next((s for s in ("trainval", "train") if (main / f"{s}.txt").is_file()), None)
            if split is None:
                found = sorted(main.glob("*.txt"))
                if not found:
                    raise DatasetError("no split file found in ImageSets/Main", main)
                split = found[0].stem
        return VOCDataset(root, split, names, on_error=on_error)
    if format == "yolo":
        names = class_names or _read_classes(root / "classes.txt")
        if names is None:
            raise DatasetError("YOLO dataset needs class names (classes.txt or data.class_names)", root)
        image_dir = Path(images) if images else images_folder(root, split)
        label_dir = Path(ann) if ann else labels_folder(root, split)
        return YoloDataset(image_dir, label_dir, tuple(names), on_error=on_error)
    if root.is_file():
        ann_path = root
        up, up2 = root.parent, root.parent.parent
        candidates = (up2 / "JPEGImages", up2 / "images", up / "JPEGImages", up / "images")
        image_dir = next((d for d in candidates if d.is_dir()), up)
    else:
        ann_path = root / "annotations" / f"instances_{split or 'train'}.json"
        image_dir = images_folder(root, split)
    ann_path = Path(ann) if ann else ann_path
    image_dir = Path(images) if images else image_dir
    return CocoDataset(image_dir, ann_path, tuple(class_names) if class_names else None, on_error=on_error)


def check_dataset(
    source: str | Path | RecordDataset,
    format: str = "auto",
    split: str | None = None,
    class_names: tuple[str, ...] | list[str] | None = None,
    scan_images: bool = True,
    decode: bool = False,
    progress: bool = False,
) -> CheckReport:
    """List ALL problems of a dataset (a folder/json as in :func:`open_dataset`, or a built loader).

    ``scan_images`` checks each image's header and structure; ``decode`` also decodes its pixels (finds
    pixel data that is short or corrupt, which the header scan cannot see; slower). ``progress``: a bar.

    File-level problems that make the whole dataset unreadable (no split file, json not parsable)
    are reported as the only error. Never raises DatasetError.
    """
    report = CheckReport(str(source) if not isinstance(source, RecordDataset) else type(source).__name__, format)
    if isinstance(source, RecordDataset):
        ds = source
    else:
        try:
            ds = open_dataset(source, format, split, class_names, on_error="skip")
        except DatasetError as exc:
            report.errors.append(Problem(exc.file or str(source), exc.reason, exc.field, exc.line))
            return report
    report.format = type(ds).__name__
    report.repairs = Counter(ds.repairs)
    for p in ds.problems:
        (report.broken_images if p.kind == IMAGE else report.errors).append(p)
    hist = Counter()
    from tqdm import tqdm

    for rec in tqdm(ds.records, desc="check", unit="img", disable=not (progress and scan_images), leave=False):
        hist.update(rec.labels.tolist())
        report.num_ignored += int(rec.ignore.sum())
        if scan_images:
            try:
                orientation = probe_image_info(rec.path, expected_hw=(rec.height, rec.width))[2]
                if orientation != 1:
                    report.exif_rotated.append(f"{rec.path} (orientation {orientation})")
                if decode:
                    read_image(rec.path, expected_hw=(rec.height, rec.width))
            except DatasetError as exc:
                report.broken_images.append(Problem(str(rec.path), exc.reason, key=rec.key, kind=IMAGE))
    report.num_images = len(ds.records)
    if not ds.records and not report.errors:
        report.errors.append(Problem(str(source), "no images: check the split and the annotation files"))
    report.records = list(ds.records)
    report.num_objects = sum(len(r.labels) for r in ds.records)
    report.class_histogram = {name: hist.get(i, 0) for i, name in enumerate(ds.class_names)}
    return report

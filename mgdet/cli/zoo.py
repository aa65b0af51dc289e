"""``mgdet zoo``: the detectors shipped with mgdet (list, details) and ``--pack`` (a finished run -> the zoo)."""

from __future__ import annotations

import argparse

from mgdet.cli.common import add_no_progress, print_table

DESCRIPTION = """The project's own trained detectors, shipped with the package (mgdet/zoo/detectors): the CPU
benchmark recipe (configs/benchmark/) trained by scripts/make_zoo.sh. Use zoo:NAME wherever a checkpoint path is
accepted: mgdet eval zoo:retinanet_mbv2_mg, mgdet detect zoo:retinanet_mbv2_mg photos/ --out dets,
mgdet export zoo:retinanet_mbv2_mg --onnx mg.onnx. Only the trained neck and head are stored (half precision,
sha256-checked); the frozen ImageNet backbone is read from the installed weights file. AP is on the benchmark's
validation split, in %: at the end of training (float32) and of the stored file."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``zoo`` verb."""
    p = sub.add_parser("zoo", help="list the trained detectors shipped with mgdet (zoo:NAME)",
                       description=DESCRIPTION)  # fmt: skip
    p.add_argument("name", nargs="?", help="show this detector's manifest (how it was trained, its metrics)")
    p.add_argument("--pack", nargs="+", metavar="RUN_DIR",
                   help="store finished runs (mgdet reproduce folders runs/<detector>_<strategy>_s<seed>) as zoo "
                        "detectors: neck + head in half precision, evaluated again, manifest written")  # fmt: skip
    p.add_argument("--out", help="zoo folder --pack writes into (default: the package's, or $MGDET_ZOO_DIR)")
    p.add_argument("--command", default="", help="--pack: the command that trained the runs, kept in the manifest")
    p.add_argument("--overwrite", action="store_true", help="--pack: replace zoo detectors of the same name")
    add_no_progress(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mgdet.zoo.catalog import summary_rows, zoo_dir

    if args.pack:
        from mgdet.demo.pack import pack_run

        for run_dir in args.pack:
            pack_run(run_dir, args.out, command=args.command, overwrite=args.overwrite,
                     progress=not args.no_progress, log=print)  # fmt: skip
        headers, rows = summary_rows(args.out)
        print_table(rows, headers, title=f"zoo: {args.out or zoo_dir()}")
        return 0
    if args.name:
        return _details(args.name)
    headers, rows = summary_rows()
    print_table(rows, headers, title=f"zoo: {zoo_dir()} (AP on the benchmark's validation split, %)")
    print("use zoo:NAME wherever a checkpoint path is accepted (mgdet eval zoo:NAME); mgdet zoo NAME for details")
    return 0


def _details(name: str) -> int:
    from mgdet.zoo.catalog import read_manifest

    m = read_manifest(name)
    m.pop("_dir", None)
    pct = lambda d: ", ".join(f"{k} {100 * v:.2f}" for k, v in d.items() if isinstance(v, int | float))  # noqa: E731
    rows = [
        ("name", f"zoo:{m['name']}"),
        ("detector / strategy / seed", f"{m.get('detector')} / {m.get('strategy')} / {m.get('seed')}"),
        ("config", m.get("config_file", "-")),
        ("command", m.get("command", "-")),
        ("trained on", m.get("machine", "-")),
        ("training", f"{m.get('iters')} steps, {m.get('epochs')} epochs, "
                     f"{float(m.get('train_time_s') or 0) / 60:.1f} min"),
        ("metrics, end of training (float32)", pct(m["metrics"].get("float32", {}))),
        ("metrics, stored file (float16)", pct(m["metrics"].get("stored", {}))),
        ("dataset", "{root} {split} ({images} images), generator {generator_version}, {val_annotations} sha256 "
                    "{val_sha256}".format_map(_Missing(m.get("dataset", {})))),
        ("weights", f"{m['weights'].get('bytes')} bytes, sha256 {m['weights']['sha256']}"),
        ("backbone", f"{m['backbone'].get('file')} (sha256 {m['backbone'].get('sha256')})"),
        ("packed", f"{m.get('packed', '-')}, mgdet {m.get('mgdet_version', '?')}, commit {m.get('code_commit', '-')}"),
    ]  # fmt: skip
    print_table(rows, ["", "value"], align=["l", "l"])
    return 0


class _Missing(dict):
    """``str.format_map`` mapping that shows a missing field as ``?``."""

    def __missing__(self, key: str) -> str:
        return "?"

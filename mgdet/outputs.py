"""The write rule, in one place: no verb writes over a file it was given as input or over an earlier result,
unless the user asked for exactly that (``--resume``, ``--overwrite``). Every check here runs before the
verb writes anything; each raises :class:`mgdet.errors.OutputError` naming the paths and what to do.
Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mgdet.errors import OutputError

#: what ``train`` writes into a run folder that an earlier run's results live in
RUN_RESULTS = ("last.pth", "best.pth")


def same_path(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name the same file or folder (links and ``..`` resolved)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def is_within(path: str | Path, folder: str | Path) -> bool:
    """True when ``path`` is ``folder`` or lies somewhere under it."""
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


def check_output_folder(out: str | Path, inputs: Iterable[str | Path], option: str = "--out") -> None:
    """Refuse an output folder that is an input, lies inside an input folder, or is the folder of an input file
    (its results would overwrite, or be mixed with, what the verb reads)."""
    for inp in inputs:
        inp = Path(inp)
        if inp.is_dir() and is_within(out, inp):
            raise OutputError(
                f"{option} {out} is inside the input folder {inp}: the results would be mixed with (or overwrite) "
                "the inputs; choose a folder outside it"
            )
        if inp.exists() and not inp.is_dir() and same_path(out, inp):
            raise OutputError(f"{option} {out} is the input file {inp}; choose another path")


def check_not_inputs(outputs: Iterable[str | Path], inputs: Sequence[str | Path]) -> None:
    """Refuse when any output file would be one of the input files."""
    for out in outputs:
        for inp in inputs:
            if Path(inp).is_file() and same_path(out, inp):
                raise OutputError(f"{out} would overwrite the input file {inp}; choose another output path")


def check_fresh(out: str | Path, names: Iterable[str], overwrite: bool, option: str = "--out") -> None:
    """Refuse when ``out`` already holds results of an earlier run (``names``), unless ``overwrite``."""
    found = [n for n in names if (Path(out) / n).exists()]
    if found and not overwrite:
        raise OutputError(
            f"{option} {out} already holds {', '.join(found)} of an earlier run; choose another folder, or pass "
            "--overwrite to replace them"
        )


def check_run_folder(out_dir: str | Path, resume: str | Path | None) -> None:
    """Refuse to train into a run folder that holds a checkpoint unless the run resumes."""
    found = [n for n in RUN_RESULTS if (Path(out_dir) / n).exists()]
    if found and resume is None:
        raise OutputError(
            f"output_dir {out_dir} already holds {', '.join(found)} of an earlier run: continue it with "
            "--resume auto, or train into another folder (output_dir=PATH)"
        )


def distinct_names(paths: Sequence[Path], suffix: str = ".jpg") -> list[str]:
    """One output file name per input path, ``<stem><suffix>``; colliding stems get ``_2``, ``_3``, ..."""
    seen: set[str] = set()
    names = []
    for p in paths:
        name, k = f"{p.stem}{suffix}", 1
        while name.lower() in seen:
            k += 1
            name = f"{p.stem}_{k}{suffix}"
        seen.add(name.lower())
        names.append(name)
    return names

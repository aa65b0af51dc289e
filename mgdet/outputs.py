"""The write rule, in one place: no verb writes over a file it was given as input or over an earlier result,
unless the user asked for exactly that (``--resume``, ``--overwrite``). Every check here runs before the
verb writes anything; each raises :class:`mgdet.errors.OutputError` naming the paths and what to do.
:func:`folder_lock` keeps a second writer out of a folder while a run writes into it. Torch-free.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mgdet.errors import OutputError

#: what ``train`` writes into a run folder that an earlier run's results live in
RUN_RESULTS = ("last.pth", "best.pth")
#: every file of a run folder (a folder holding one of them belongs to a run)
RUN_FILES = (*RUN_RESULTS, "history.csv", "config.yaml", "metrics.json")


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


def check_run_folder(out_dir: str | Path, resume: str | Path | None, restart: bool = False) -> None:
    """Refuse to train into a folder that holds a run's files (any of :data:`RUN_FILES`) unless the run resumes,
    and to resume a checkpoint of another folder into one that holds a run: resuming writes into the
    checkpoint's own folder or into an empty (or new) one. ``restart`` (``--resume auto`` finding no checkpoint)
    allows starting over a run that stopped before its first checkpoint (config.yaml, history.csv only)."""
    found = [n for n in RUN_RESULTS if (Path(out_dir) / n).exists()]
    if found and resume is None:
        raise OutputError(
            f"output_dir {out_dir} already holds {', '.join(found)} of an earlier run: continue it with "
            "--resume auto, or train into another folder (output_dir=PATH)"
        )
    partial = [n for n in RUN_FILES if (Path(out_dir) / n).exists()]
    if partial and resume is None and not restart:
        raise OutputError(
            f"output_dir {out_dir} already holds {', '.join(partial)} of an earlier run that saved no checkpoint: "
            "start it over with --resume auto, or train into another folder (output_dir=PATH)"
        )
    if resume is None or str(resume).startswith("zoo:"):
        return
    source = Path(resume).parent
    held = [n for n in RUN_FILES if (Path(out_dir) / n).exists()]
    if held and not same_path(source, out_dir):
        raise OutputError(
            f"--resume {resume} continues the run in {source}, but output_dir {out_dir} holds another run's "
            f"{', '.join(held)}: resume into the checkpoint's folder (output_dir={source}) or into a new one"
        )


def check_writable(folder: str | Path, option: str = "--out") -> None:
    """Create ``folder`` (and its parents) and write a probe file there, before any work: an unwritable output
    folder is refused now instead of after the work is done."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".mgdet-write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(
            f"{option} {folder}: cannot write there ({e.strerror or e}); choose a folder you can write to"
        ) from None


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


#: the lock file a writing verb holds in its output folder
LOCK_NAME = ".mgdet.lock"


@contextmanager
def folder_lock(folder: str | Path, verb: str, log: Callable[[str], None] = lambda s: None) -> Iterator[Path]:
    """Hold ``folder/.mgdet.lock`` (created atomically, naming this process) while the block runs; released on
    any exit. A lock of a live process is refused in one :class:`OutputError` naming its holder; a lock left by a
    process of this host that no longer runs (killed) is taken over, with a message."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "verb": verb,
          "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if holder is None or _alive(holder):
                raise OutputError(_busy(folder, path, holder)) from None
            log(f"{folder}: taking over the lock of mgdet {holder.get('verb', '?')} (pid {holder.get('pid')}, "
                "no longer running)")  # fmt: skip
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    else:
        raise OutputError(_busy(folder, path, _read_lock(path)))
    try:
        yield path
    finally:
        holder = _read_lock(path)
        if holder is not None and (holder.get("pid"), holder.get("host")) == (me["pid"], me["host"]):
            path.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict | None:
    """The holder recorded in a lock file; None when it cannot be read (being written, or damaged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def _alive(holder: dict) -> bool:
    """Whether the lock's process still runs; a process of another host is assumed to (it cannot be asked)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _busy(folder: Path, path: Path, holder: dict | None) -> str:
    if holder is None:
        return (
            f"{folder} is in use by another mgdet command ({path} is being written or damaged); if no mgdet "
            f"command writes there, remove {path}"
        )
    return (f"{folder} is in use by mgdet {holder.get('verb', '?')} (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('since', '?')}): wait for it to finish or choose another "
            f"folder (if that process is gone, remove {path})")  # fmt: skip

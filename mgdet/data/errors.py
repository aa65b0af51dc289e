"""Dataset problems and the one exception type every loader raises.

A :class:`Problem` is one thing wrong with a dataset (a bad field in an annotation file, a broken
image). Loaders collect problems instead of stopping at the first one, so ``check_dataset`` can list
them all; with ``on_error="raise"`` the first one is raised as a :class:`DatasetError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mgdet.errors import MgdetError

#: Problem kinds: an annotation is wrong, or an image file is missing/broken.
ANNOTATION = "annotation"
IMAGE = "image"


class DatasetError(MgdetError, ValueError):
    """A dataset file is malformed. The message always names the file (and line/field when known)."""

    def __init__(
        self, message: str, file: str | Path | None = None, field: str | None = None, line: int | None = None
    ) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.line = line
        self.reason = message
        super().__init__(format_location(self.file, field, line) + message)


def format_location(file: str | None, field: str | None = None, line: int | None = None) -> str:
    """``"file:line: field: "`` prefix for messages (parts that are unknown are left out)."""
    out = ""
    if file is not None:
        out += file + (f":{line}" if line is not None else "") + ": "
    if field:
        out += field + ": "
    return out


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset.

    ``key`` names the image the problem belongs to (``None`` when it concerns the whole file or no
    single image); with ``on_error="skip"`` loaders drop every image whose key has a problem.
    """

    file: str
    message: str
    field: str | None = None
    line: int | None = None
    key: str | None = None
    kind: str = ANNOTATION

    def __str__(self) -> str:
        return format_location(self.file, self.field, self.line) + self.message

    def to_error(self) -> DatasetError:
        """This problem as an exception."""
        return DatasetError(self.message, self.file, self.field, self.line)


def raise_first(problems: list[Problem]) -> None:
    """Raise the first problem as a :class:`DatasetError`, mentioning how many more there are."""
    if not problems:
        return
    first = problems[0]
    more = len(problems) - 1
    suffix = f" (and {more} more problem(s); run check_dataset to list them all)" if more else ""
    raise DatasetError(first.message + suffix, first.file, first.field, first.line)

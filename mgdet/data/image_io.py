"""Image decoding and fast header-level checks.

EXIF orientation policy: OpenCV's ``IMREAD_COLOR`` would apply the EXIF orientation itself, but it
also drops 16-bit depth and alpha silently, and ``IMREAD_UNCHANGED`` (needed to see depth and alpha)
ignores orientation. So we decode with ``IMREAD_UNCHANGED``, read the orientation tag with PIL from the
file header, and apply it ourselves with numpy (same result as ``PIL.ImageOps.exif_transpose``).
Images are therefore returned as a viewer displays them, and annotation sizes are expected in that
orientation. One exception keeps old annotations usable: when the declared annotation size matches the
stored (un-rotated) pixels but not the rotated ones, the annotation was made on the raw pixels and the
image is returned un-rotated.

Every failure is a :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import DatasetError

#: Images with more pixels than this are refused before decoding (PIL's decompression-bomb limit).
MAX_IMAGE_PIXELS = 89_478_485
#: Image files larger than this are refused before they are read (uncompressed 16-bit RGBA at the pixel limit
#: needs 716 MB; a bigger file is damaged or no image, and reading it whole could exhaust the memory).
MAX_IMAGE_BYTES = 1 << 30
#: Image file extensions the folder-based loaders (YOLO) pick up.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_EXIF_ORIENTATION = 0x0112
_JPEG_EOI = b"\xff\xd9"


def header_info(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int, int]:
    """Read ``(height, width, exif_orientation)`` from the file header without decoding pixels.

    ``height, width`` are the stored (un-rotated) dimensions. Raises DatasetError for a missing,
    empty, unidentifiable or oversized image.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise DatasetError("image file not found", path) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a pipe, socket or device"
        raise DatasetError(f"not a regular file ({kind}): it cannot be read as an image", path)
    if st.st_size == 0:
        raise DatasetError("image file is empty (0 bytes)", path)
    if st.st_size > MAX_IMAGE_BYTES:
        raise DatasetError(
            f"image file is too large ({st.st_size / 2**30:.1f} GiB > the {MAX_IMAGE_BYTES >> 30} GiB limit)", path
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                orientation = _orientation(im)
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"image is too large to decode safely ({exc})", path) from None
    except Exception as exc:  # PIL raises many types for non-images; all mean the same thing here
        raise DatasetError(f"not a readable image ({type(exc).__name__}: {exc})", path) from None
    if width <= 0 or height <= 0:
        raise DatasetError(f"image header has an invalid size {width}x{height}", path)
    if width * height > max_pixels:
        raise DatasetError(f"image is too large ({width}x{height} > {max_pixels} pixels)", path)
    if orientation not in range(1, 9):
        orientation = 1
    return height, width, orientation


def _orientation(im: Image.Image) -> int:
    """EXIF orientation from an opened (not decoded) image; 1 when absent or unreadable.

    Only EXIF found in the header is used: PIL would decode a whole PNG to look for an ``eXIf``
    chunk after the pixel data, so such (rare) trailing EXIF blocks are ignored.
    """
    if "exif" not in im.info and im.format not in ("JPEG", "MPO", "TIFF"):
        return 1
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a corrupt EXIF block does not make the pixels unusable
        return 1


def oriented_size(height: int, width: int, orientation: int) -> tuple[int, int]:
    """Displayed ``(h, w)`` after applying an EXIF orientation (5..8 swap the axes)."""
    return (width, height) if orientation >= 5 else (height, width)


def image_size(path: str | Path) -> tuple[int, int]:
    """Displayed ``(h, w)`` of an image from its header (EXIF orientation applied)."""
    h, w, orientation = header_info(path)
    return oriented_size(h, w, orientation)


def probe_image(path: str | Path, expected_hw: tuple[int, int] | None = None) -> tuple[int, int]:
    """Fast scan for broken images: header read, PIL ``verify()`` and a JPEG end-marker check.

    Returns the displayed ``(h, w)``; raises DatasetError for missing, zero-byte, truncated,
    non-image files and (when ``expected_hw`` is given) a size that matches no orientation.
    """
    h, w, _ = probe_image_info(path, expected_hw)
    return h, w


def probe_image_info(path: str | Path, expected_hw: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """:func:`probe_image` that also returns the EXIF orientation tag: ``(h, w, orientation)``, one header read."""
    path = Path(path)
    h, w, orientation = header_info(path)
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()  # checks chunk CRCs / structure without decoding pixels
    except Exception as exc:
        raise DatasetError(f"image is corrupt ({type(exc).__name__}: {exc})", path) from None
    if fmt == "JPEG" and not _jpeg_has_end_marker(path):
        raise DatasetError("JPEG is truncated (no end-of-image marker)", path)
    shown = oriented_size(h, w, orientation)
    if expected_hw is not None:
        _choose_orientation(path, (h, w), orientation, expected_hw)
    return (*shown, orientation)


def read_image(
    path: str | Path, expected_hw: tuple[int, int] | None = None, max_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Decode an image to uint8 ``[H, W, 3]`` RGB.

    Grayscale is replicated to 3 channels, alpha is dropped, 16-bit is scaled to 8-bit
    (``round(v / 257)``), the EXIF orientation is applied (see module docstring). ``expected_hw``
    (the annotation's size) is checked against the result.
    """
    path = Path(path)
    h, w, orientation = header_info(path, max_pixels)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(f"cannot read image file ({exc})", path) from None
    if data.size >= 2 and data[0] == 0xFF and data[1] == 0xD8 and _JPEG_EOI not in data[-1024:].tobytes():
        raise DatasetError("JPEG is truncated (no end-of-image marker)", path)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError("image data could not be decoded (corrupt or truncated)", path)
    img = _to_rgb8(img, path)
    if img.shape[:2] != (h, w):
        raise DatasetError(f"decoded size {img.shape[1]}x{img.shape[0]} differs from header {w}x{h}", path)
    if expected_hw is not None:
        orientation = _choose_orientation(path, (h, w), orientation, expected_hw)
    return apply_exif_orientation(img, orientation)


def read_images(paths: list[Path], on_error: str = "raise") -> list[tuple[Path, np.ndarray | None, str]]:
    """Decode each of ``paths``: ``(path, image, "")``; a file that cannot be read is raised as a
    :class:`DatasetError` naming it (``on_error="raise"``) or returned as ``(path, None, message)`` (``"skip"``)."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    out: list[tuple[Path, np.ndarray | None, str]] = []
    for path in paths:
        try:
            out.append((Path(path), read_image(path), ""))
        except DatasetError as exc:
            if on_error == "raise":
                raise
            out.append((Path(path), None, str(exc)))
    return out


def apply_exif_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip ``[H, W, C]`` pixels as EXIF ``orientation`` (1..8) prescribes (contiguous result)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, k=1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(img))


def _choose_orientation(path: Path, raw_hw: tuple[int, int], orientation: int, expected_hw: tuple[int, int]) -> int:
    """Orientation to apply so the image matches the annotation size, or DatasetError."""
    expected_hw = (int(expected_hw[0]), int(expected_hw[1]))
    if oriented_size(*raw_hw, orientation) == expected_hw:
        return orientation
    if raw_hw == expected_hw:  # annotation was made on the stored, un-rotated pixels
        return 1
    shown = oriented_size(*raw_hw, orientation)
    raise DatasetError(
        f"image is {shown[1]}x{shown[0]} (w x h) but the annotation says {expected_hw[1]}x{expected_hw[0]}",
        path,
    )


def _to_rgb8(img: np.ndarray, path: Path) -> np.ndarray:
    """OpenCV's decoded array (any depth, 1/3/4 channels, BGR order) -> uint8 [H, W, 3] RGB."""
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DatasetError(f"unsupported pixel type {img.dtype}", path)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise DatasetError(f"unsupported image layout {img.shape}", path)


def _jpeg_has_end_marker(path: Path) -> bool:
    """True when the last KiB of a JPEG contains the end-of-image marker (truncated files lack it)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - 1024))
        return _JPEG_EOI in f.read()

"""Deprecated (removed in mgdet 0.3): the former home of the FCOS assignment. Use :func:`mgdet.assign.assign`
with :func:`mgdet.assign.fcos_priors` (or the detector's ``priors()``) and :mod:`mgdet.assign.fcos`."""

import warnings

from mgdet.assign.dispatch import assign_fcos
from mgdet.assign.fcos import FCOS_RANGES, centerness, level_ranges, point_distances

warnings.warn("mgdet.assign_fcos is deprecated: import from mgdet.assign (assign, fcos_priors) and "
              "mgdet.assign.fcos", DeprecationWarning, stacklevel=2)  # fmt: skip

__all__ = ["FCOS_RANGES", "assign_fcos", "centerness", "level_ranges", "point_distances"]

"""Former home of the FCOS assignment; kept so old imports work. The code lives in :mod:`mgdet.assign.fcos`
(rules) and :mod:`mgdet.assign.dispatch` (:func:`assign_fcos`)."""

from mgdet.assign.dispatch import assign_fcos
from mgdet.assign.fcos import FCOS_RANGES, centerness, level_ranges, point_distances

__all__ = ["FCOS_RANGES", "assign_fcos", "centerness", "level_ranges", "point_distances"]

"""Former home of the evaluation code, kept so that ``from mgdet.engine.evaluate import ...`` still works;
everything lives in :mod:`mgdet.evaluation`."""

from mgdet import evaluation as _evaluation
from mgdet.evaluation import *  # noqa: F403 (the re-export is this module's only job)

__all__ = list(_evaluation.__all__)

"""Leaf helpers every layer may use and that import no other mgdet package: text tables (:mod:`.table`),
drawing boxes on images (:mod:`.draw`), the machine description (:mod:`.machine`) and the ImageNet constants
(:mod:`.imagenet`)."""

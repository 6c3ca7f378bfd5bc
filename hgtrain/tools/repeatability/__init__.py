"""``hgtrain repeatability``: does the network find the same points again on real photographs?

Detector repeatability as SuperPoint reports it on HPatches, on the photographs that scikit-image
bundles (:mod:`hgtrain.data.generator.photos`; the ``photos`` extra, nothing is downloaded), each
cropped to a square and resized to ``--size`` px, under known changes
(:mod:`~hgtrain.tools.repeatability.pairs`): ``--pairs`` seeded ``viewpoint`` pairs (a random
homography: perspective, rotation, scale, translation) and as many ``illumination`` pairs (the
same geometry; gamma, contrast, brightness, blur and noise) per photograph.

Every detector (:mod:`~hgtrain.tools.repeatability.detectors`: the network of ``--ckpt_path``,
OpenCV's Harris, Shi-Tomasi and FAST from the ``classical`` extra) keeps its ``--points`` (N)
strongest points per image, after the same border and non-maximum suppression for all. A point is
repeated when the known homography maps it within ``--epsilon`` px of a point detected in the
other image; only points that it maps inside the other image count, in both directions
(:mod:`~hgtrain.tools.repeatability.score`). The command prints a table of the mean over pairs per
detector and change, with the mean points per image, and writes ``repeatability.json`` (settings,
summary, every pair's homography, change and counts), ``repeatability.md`` (the table) and
``repeatability.png`` (a bar chart) into ``--output``; existing files only with ``--overwrite
true``. Options also come from a YAML file: ``--config FILE``.
"""

from hgtrain.tools.repeatability.evaluation import build_parser, main

__all__ = ["build_parser", "main"]

"""The transfer benchmark: does a backbone pretrained on the synthetic corners help on tasks it
never saw?

:mod:`.sets` writes the downstream tasks (:mod:`hgtrain.data.generator.downstream`) as
COCO-keypoints folders (``hgtrain transfer-data``).
"""

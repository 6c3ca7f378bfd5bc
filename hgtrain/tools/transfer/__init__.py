"""The transfer benchmark: does a backbone pretrained on the synthetic corners help on tasks it
never saw?

:mod:`.sets` writes the downstream tasks (:mod:`hgtrain.data.generator.downstream`) as
COCO-keypoints folders (``hgtrain transfer-data``); :mod:`.experiment` fine-tunes from the
pretrained backbone, from scratch and with the backbone frozen, over labelled-set sizes and seeds
(``hgtrain transfer``); :mod:`.report` turns the curves into a table and a plot.
"""

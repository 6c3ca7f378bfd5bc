"""From samples to batches: the on-disk format, the datasets, augmentation and the DataModule.

:mod:`.coco_format` and :mod:`.storage` read and write COCO-keypoints folders safely,
:mod:`.prepare` writes the generated val / test sets, :mod:`.synthetic` and :mod:`.folder` are the
datasets (rendered on the fly, or read from a folder), :mod:`.transforms` the v2 augmentation of
image and keypoints, and :mod:`.datamodule` puts them together for Lightning.
"""

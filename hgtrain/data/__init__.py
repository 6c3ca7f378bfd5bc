"""Synthetic keypoint data: renderer, on-disk format, transforms and the DataModule."""

"""Synthetic keypoint data: renderer, on-disk format, transforms and the DataModule.

The command-line tools live in :mod:`hgtrain.data.benchmark` and :mod:`hgtrain.data.preview`
(not imported here, so that ``python -m`` runs them cleanly).
"""

from hgtrain.data.coco_format import (
    DatasetFormatError,
    KeypointSet,
    load_sample,
    read_keypoint_set,
    write_keypoint_set,
)
from hgtrain.data.collate import collate_keypoints
from hgtrain.data.datamodule import KeypointDataModule
from hgtrain.data.folder import KeypointFolder
from hgtrain.data.photometric import PhotometricNoise, apply_photometric_noise
from hgtrain.data.prepare import prepare_synthetic_set
from hgtrain.data.render import SceneConfig, render_scene
from hgtrain.data.sample import CLASS_NAMES, Sample
from hgtrain.data.sampler import EpochSampler
from hgtrain.data.synthetic import SyntheticKeypoints
from hgtrain.data.transforms import (
    HorizontalFlip,
    KeypointTransform,
    RandomScaleCrop,
    ResizePad,
    VerticalFlip,
)

__all__ = [
    "CLASS_NAMES",
    "DatasetFormatError",
    "EpochSampler",
    "HorizontalFlip",
    "KeypointDataModule",
    "KeypointFolder",
    "KeypointSet",
    "KeypointTransform",
    "PhotometricNoise",
    "RandomScaleCrop",
    "ResizePad",
    "Sample",
    "SceneConfig",
    "SyntheticKeypoints",
    "VerticalFlip",
    "apply_photometric_noise",
    "collate_keypoints",
    "load_sample",
    "prepare_synthetic_set",
    "read_keypoint_set",
    "render_scene",
    "write_keypoint_set",
]

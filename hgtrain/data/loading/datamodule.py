"""The LightningDataModule: an endless synthetic train stream and fixed val / test sets on disk."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from hgtrain.data.generator.photometric import PhotometricNoise
from hgtrain.data.generator.scene import (
    CONTRAST_BANDS,
    SCENE_PRESETS,
    SceneConfig,
    contrast_band_scene,
    scene_preset,
    unseen_scene,
)
from hgtrain.data.loading.coco_format import DatasetFormatError, KeypointSet, read_keypoint_set
from hgtrain.data.loading.collate import collate_keypoints
from hgtrain.data.loading.folder import KeypointFolder
from hgtrain.data.loading.images import ImageFolder, collate_images, image_files
from hgtrain.data.loading.prepare import prepare_synthetic_set, synthetic_set_path
from hgtrain.data.loading.sampler import EpochSampler
from hgtrain.data.loading.storage import find_problem
from hgtrain.data.loading.synthetic import SyntheticKeypoints
from hgtrain.data.loading.transforms import (
    HorizontalFlip,
    IgnoreRule,
    ObjectCrop,
    RandomScaleCrop,
    RandomWindowCrop,
    ResizePad,
    VerticalFlip,
    check_flip_pairs,
)
from hgtrain.data.loading.workers import exit_with_parent
from hgtrain.data.sample import CLASS_NAMES
from hgtrain.errors import ConfigError, check
from hgtrain.hparams import make_hparams_plain

__all__ = ["KeypointDataModule"]

TEST_VARIANTS = ("noisy", "clean", "unseen", *CONTRAST_BANDS)
DEFAULT_TEST_SETS = ("noisy", "clean", "unseen")
NO_KEYPOINTS = "holds no keypoints (none with v > 0 inside its image)"
WHY_KEYPOINTS = {
    "train": "training would only teach the network to find none; add annotations",
    "val": "point AP (val/map) is undefined without ground truth; add annotations, or leave "
    "data.val_dir unset to validate on the generated set",
    "test": "point AP (test/map) is undefined without ground truth; add annotations (images "
    "without any belong in data.predict_dir, for predict)",
}
"""Why each own set needs keypoints: the end of the error about one without."""


class GeneratedSet(NamedTuple):
    """What a generated evaluation set holds (see
    :func:`~hgtrain.data.loading.prepare.prepare_synthetic_set`); ``variant`` names it in its
    folder (None: ``noisy`` or ``clean``, by its noise)."""

    split: str
    size: int
    scene: SceneConfig
    noise: PhotometricNoise | None
    variant: str | None


class KeypointDataModule(L.LightningDataModule):
    """Corner-keypoint data for the hourglass models.

    By default everything is synthetic (:mod:`hgtrain.data.loading.synthetic`): training renders new
    images every epoch, and :meth:`prepare_data` writes the fixed validation and test sets under
    ``root/synthetic/`` once (PNG + COCO-keypoints JSON, reused while the settings match). Point
    ``train_dir`` / ``val_dir`` / ``test_dir`` at folders in that format to use your own images:
    each is read once, when :attr:`class_names` is first asked for (by the CLI, while it builds
    the model) or at :meth:`setup`, and must hold keypoints (see :meth:`own_sets`).

    Batches are ``(images uint8 [B, 3, S, S], list of target dicts)``
    (:func:`hgtrain.data.loading.collate.collate_keypoints`); targets are encoded by the model on
    its device.

    Args:
        root: folder for the generated sets.
        image_size: side S of the square model input in pixels (own images are letterboxed to it).
        scene: synthetic scene content (shape mix, background families, object counts and
            sizes...): a :class:`SceneConfig` (default ``SceneConfig()``, the ``wide`` preset) or
            the name of a preset (``classic``: the scene of hgtrain 0.4; see
            :data:`~hgtrain.data.generator.scene.SCENE_PRESETS`).
        noise: whether the train stream and the validation set get photometric noise.
        noise_config: ranges of that noise; default ``PhotometricNoise()``.
        train_length: training samples per epoch, **global**: under DDP each of W ranks draws a
            disjoint ``train_length // W`` of them.
        val_size: images in the generated validation set (a multiple of the number of devices
            avoids the padding Lightning adds to evaluation under DDP).
        test_size: images in each generated test set.
        test_sets: generated test sets, in ``test_dataloader`` order, any of "noisy", "clean"
            (the same scenes with and without photometric noise; report both, as SuperPoint does)
            and "unseen": a background family and a shape kind that training never draws
            (:func:`~hgtrain.data.generator.scene.unseen_scene`), with the noise of "noisy";
            "low_contrast" (every object 20-50 grey levels from the background under it) and
            "faint" (8-20), the scenes of "noisy" at one contrast band
            (:data:`~hgtrain.data.generator.scene.CONTRAST_BANDS`), with its noise. Default: the
            first three.
        hflip: probability of a horizontal flip in training.
        flip_pairs: pairs of own class names that a horizontal flip swaps, e.g.
            ``[[upper_left, upper_right], [lower_left, lower_right]]`` (``top_left`` and
            ``bottom_right`` box corners are always re-derived from the flipped box).
        vflip: probability of a vertical flip in training.
        scale: range of the random rescale before a random crop in training ((1, 1): none for
            synthetic data; own images are always fitted to ``image_size`` first).
        crop_scales: CornerNet's scale augmentation instead of ``scale``: a window of
            ``image_size * s``, s drawn from these values, cropped around a random centre and
            resized to ``image_size`` (zoom 1/s; :class:`RandomWindowCrop`). The original's are
            ``[0.6, 0.7, ..., 1.3]``.
        crop_border: smallest distance (px) of that window's centre from the image border (128 in
            the original; halved until it fits small images).
        crop_around_objects: CornerNet-Saccade's crop instead (:class:`ObjectCrop`): mostly
            around a random object rescaled into its size band, else the image scaled by one of
            ``crop_scales`` (the original's: ``[0.5, 0.6, ..., 1.0]``).
        min_object_size: training does not penalise objects whose longest side in the image is
            under this many px: their keypoints become ignore regions of the focal loss
            (CornerNet-Saccade: 16). 0: every object counts.
        min_visible: nor objects of which at most this fraction of the box is left in the image
            after augmentation (CornerNet-Saccade: 0.5). 0: every object counts.
        batch_size: images per batch **per device** (the global batch is ``batch_size x devices``).
        num_workers: DataLoader worker processes per device (also used to render the sets).
        pin_memory: pin batches in page-locked memory for faster host-to-GPU copies (only
            when CUDA is available).
        persistent_workers: keep workers alive between epochs (when ``num_workers > 0``).
        seed: base seed of all synthetic data and augmentation.
        train_dir: own training set (COCO-keypoints folder) instead of the synthetic stream.
        train_subset: train on the first N images of ``train_dir`` only (learning curves over
            the number of labelled images, as ``hgtrain transfer`` draws them).
        val_dir: own validation set instead of the generated one.
        test_dir: own test set instead of the generated ones (one test loader).
        image_roots: folders outside the own sets' folders that their images may be in (e.g.
            a shared image folder that the sets link to); an image file name that resolves
            anywhere else is an error.
        predict_dir: a folder of images to predict on (any size, letterboxed to ``image_size``;
            sub-folders included; see :mod:`hgtrain.data.loading.images`); without it,
            ``predict`` runs on the images of the test set (``test_dir``, else the first
            generated one).
    """

    def __init__(
        self,
        root: str = "data",
        image_size: int = 256,
        scene: SceneConfig | str | None = None,
        noise: bool = True,
        noise_config: PhotometricNoise | None = None,
        train_length: int = 10_000,
        val_size: int = 512,
        test_size: int = 1024,
        test_sets: Sequence[str] = DEFAULT_TEST_SETS,
        hflip: float = 0.5,
        flip_pairs: Sequence[tuple[str, str]] = (),
        vflip: float = 0.0,
        scale: tuple[float, float] = (1.0, 1.0),
        crop_scales: Sequence[float] | None = None,
        crop_border: int = 128,
        crop_around_objects: bool = False,
        min_object_size: float = 0.0,
        min_visible: float = 0.0,
        batch_size: int = 16,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        seed: int = 0,
        train_dir: str | None = None,
        train_subset: int | None = None,
        val_dir: str | None = None,
        test_dir: str | None = None,
        image_roots: Sequence[str] = (),
        predict_dir: str | None = None,
    ) -> None:
        super().__init__()
        check(
            bool(test_sets) and set(test_sets) <= set(TEST_VARIANTS),
            "data",
            "test_sets",
            list(test_sets),
            f"must be a non-empty subset of {list(TEST_VARIANTS)}",
        )
        check(image_size >= 16, "data", "image_size", image_size, "must be >= 16")
        check(batch_size >= 1, "data", "batch_size", batch_size, "must be >= 1")
        check(num_workers >= 0, "data", "num_workers", num_workers, "must be >= 0")
        sizes = {"train_length": train_length, "val_size": val_size, "test_size": test_size}
        for name, size in sizes.items():
            check(size >= 1, "data", name, size, "must be >= 1")
        for name, p in (("hflip", hflip), ("vflip", vflip)):
            check(0.0 <= p <= 1.0, "data", name, p, "must be a probability in [0, 1]")
        check(
            len(scale) == 2 and 0 < scale[0] <= scale[1],
            "data",
            "scale",
            list(scale),
            "must be [low, high] with 0 < low <= high",
        )
        if crop_scales is not None:
            check(
                len(crop_scales) > 0 and min(crop_scales) > 0,
                "data",
                "crop_scales",
                list(crop_scales),
                "must be one or more scales > 0",
            )
            check(
                tuple(scale) == (1.0, 1.0),
                "data",
                "scale",
                list(scale),
                "must be [1, 1] when crop_scales is given (one scale augmentation at a time)",
            )
        check(crop_border >= 0, "data", "crop_border", crop_border, "must be >= 0")
        check(
            not crop_around_objects or crop_scales is not None,
            "data",
            "crop_around_objects",
            crop_around_objects,
            "needs crop_scales (the scales when no object is the reference)",
        )
        if predict_dir is not None:
            try:
                image_files(predict_dir)
            except FileNotFoundError as error:
                raise ConfigError("data", "predict_dir", predict_dir, str(error)) from None
        if train_subset is not None:
            check(
                train_dir is not None,
                "data",
                "train_subset",
                train_subset,
                "takes images of data.train_dir: give that too (the synthetic stream has "
                "data.train_length instead)",
            )
            check(train_subset >= 1, "data", "train_subset", train_subset, "must be >= 1")
        check(min_object_size >= 0, "data", "min_object_size", min_object_size, "must be >= 0")
        check(0 <= min_visible < 1, "data", "min_visible", min_visible, "must be in [0, 1)")
        self.save_hyperparameters()
        make_hparams_plain(self)
        self.root = Path(root)
        self.image_size = image_size
        self.test_sets = tuple(test_sets)
        self.scene = self._scene(scene)
        self.unseen_scene = self._unseen_scene() if "unseen" in self.test_sets else None
        self.noise_config = noise_config if noise_config is not None else PhotometricNoise()
        self.noise = noise
        self.train_length = train_length
        self.val_size = val_size
        self.test_size = test_size
        self.train_pipeline = self._train_pipeline(
            hflip,
            vflip,
            tuple(scale),
            crop_scales,
            crop_border,
            crop_around_objects,
            train_dir is not None,
        )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.seed = seed
        self.train_dir, self.val_dir, self.test_dir = train_dir, val_dir, test_dir
        self.train_subset = train_subset
        self.image_roots = tuple(image_roots)
        self.predict_dir = predict_dir
        self.flip_pairs = tuple(tuple(pair) for pair in flip_pairs)
        self.ignore = (
            IgnoreRule(min_object_size, min_visible) if min_object_size or min_visible else None
        )
        self._class_names: tuple[str, ...] | None = None
        self.datasets: dict[str, Dataset] = {}
        self._read_sets: dict[str, KeypointSet] = {}
        self.resume_position: dict[str, int] | None = None

    @staticmethod
    def _scene(scene: SceneConfig | str | None) -> SceneConfig:
        """The scene of ``data.scene``: given, a preset by name, or the default (``wide``)."""
        if scene is None:
            return SceneConfig()
        if isinstance(scene, str):
            check(
                scene in SCENE_PRESETS,
                "data",
                "scene",
                scene,
                f"must be a scene preset ({', '.join(sorted(SCENE_PRESETS))}) or scene settings",
            )
            return scene_preset(scene)
        return scene

    def _unseen_scene(self) -> SceneConfig:
        """The unseen test scene of :attr:`scene`; a ConfigError naming the field if the scene
        draws what that set holds out."""
        drawn = self.scene.held_out_drawn()
        if drawn:
            field, name = drawn[0]
            raise ConfigError(
                "data",
                f"scene.{field}",
                getattr(self.scene, field),
                f"draws {name!r}, which the unseen test set keeps out of training: leave it out, "
                "or 'unseen' out of data.test_sets",
            )
        return unseen_scene(self.scene)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Keypoint class names: the synthetic ones, or those of the own data sets."""
        if self._class_names is None:
            own = self.own_sets()
            names = {split: keypoint_set.class_names for split, keypoint_set in own.items()}
            if len(set(names.values())) > 1:
                split = next(s for s in names if names[s] != next(iter(names.values())))
                raise ConfigError(
                    "data",
                    f"{split}_dir",
                    getattr(self, f"{split}_dir"),
                    f"its keypoint classes differ from the other sets': {names}",
                )
            class_names = next(iter(names.values())) if own else CLASS_NAMES
            self._check_flip_pairs(class_names)
            self._class_names = class_names
            if own and self._class_names != CLASS_NAMES:
                for split in ("train", "val", "test"):
                    check(
                        split in own,
                        "data",
                        f"{split}_dir",
                        None,
                        f"the generated {split} set has the classes {list(CLASS_NAMES)}, but the "
                        f"own sets have {list(self._class_names)}: give data.{split}_dir too",
                    )
        return self._class_names

    def _check_flip_pairs(self, class_names: Sequence[str]) -> None:
        """A :class:`ConfigError` unless ``data.flip_pairs`` pair the data's own classes."""
        try:
            check_flip_pairs(self.flip_pairs, class_names)
        except ValueError as error:
            pairs = [list(pair) for pair in self.flip_pairs]
            raise ConfigError("data", "flip_pairs", pairs, str(error)) from None

    def own_sets(self) -> dict[str, KeypointSet]:
        """The own sets given, by split (``"train"``, ``"val"``, ``"test"``), each folder read once.

        A malformed folder, or one without keypoints, is a :class:`ConfigError` naming the
        argument (a one-line error in the CLI): training on it would teach the network to find
        nothing, and point AP is undefined on it. Keypoints outside their image are reported while
        reading (:func:`~hgtrain.data.loading.coco_format.read_keypoint_set`).
        """
        sets = {}
        for split in ("train", "val", "test"):
            directory = getattr(self, f"{split}_dir")
            if directory is None:
                continue
            try:
                sets[split] = self._read(directory)
            except DatasetFormatError as error:
                raise ConfigError("data", f"{split}_dir", directory, str(error)) from error
            check(
                sets[split].num_keypoints > 0,
                "data",
                f"{split}_dir",
                directory,
                f"{NO_KEYPOINTS}: {WHY_KEYPOINTS[split]}",
            )
        return sets

    def _read(self, directory: str) -> KeypointSet:
        """The parsed set in ``directory``, read (and its ignored keypoints reported) once."""
        if directory not in self._read_sets:
            self._read_sets[directory] = read_keypoint_set(
                Path(directory), image_roots=self.image_roots
            )
        return self._read_sets[directory]

    @property
    def num_classes(self) -> int:
        """Number of keypoint classes (heatmap channels)."""
        return len(self.class_names)

    @property
    def test_set_names(self) -> tuple[str, ...]:
        """Names of the test loaders, in order (for logging per test set)."""
        return (
            ("test",) if self.test_dir is not None else tuple(f"test_{t}" for t in self.test_sets)
        )

    def _train_pipeline(
        self,
        hflip: float,
        vflip: float,
        scale: tuple[float, float],
        crop_scales: Sequence[float] | None,
        crop_border: int,
        crop_around_objects: bool,
        own_data: bool,
    ) -> v2.Transform:
        steps: list[v2.Transform] = []
        if crop_around_objects:
            steps.append(ObjectCrop(self.image_size, crop_scales))
        elif crop_scales is not None:
            steps.append(RandomWindowCrop(self.image_size, crop_scales, crop_border))
        elif own_data or scale != (1.0, 1.0):
            steps.append(RandomScaleCrop(self.image_size, scale))
        if hflip > 0:
            steps.append(HorizontalFlip(hflip))
        if vflip > 0:
            steps.append(VerticalFlip(vflip))
        return v2.Compose(steps) if steps else v2.Identity()

    def generated_set(self, name: str) -> GeneratedSet:
        """What the generated set ``name`` ("val" or a ``test_<variant>`` of :attr:`test_sets`)
        holds."""
        if name == "val":
            noise = self.noise_config if self.noise else None
            return GeneratedSet("val", self.val_size, self.scene, noise, None)
        variant = name.removeprefix("test_")
        scene = self.unseen_scene if variant == "unseen" else self.scene
        if variant in CONTRAST_BANDS:
            scene = contrast_band_scene(self.scene, CONTRAST_BANDS[variant])
        noise = self.noise_config if variant != "clean" else None
        return GeneratedSet("test", self.test_size, scene, noise, variant)

    def _wanted_sets(self, stage: str | None) -> list[str]:
        """Names of the generated sets that ``stage`` uses (all for ``None``)."""
        wanted = []
        if self.val_dir is None and stage in (None, "fit", "validate"):
            wanted.append("val")
        if self.test_dir is None and (
            stage in (None, "test") or (stage == "predict" and self.predict_dir is None)
        ):
            variants = self.test_sets[:1] if stage == "predict" else self.test_sets
            wanted.extend(f"test_{variant}" for variant in variants)
        return wanted

    def prepare_data(self) -> None:
        """Write the generated sets that the trainer's current stage needs (``fit`` and
        ``validate``: validation; ``test``: the test sets; ``predict`` without ``predict_dir``:
        the first test set; all without a trainer) under ``root``, unless identical ones exist."""
        trainer = self.trainer
        stage = trainer.state.fn.value if trainer is not None and trainer.state.fn else None
        for name in self._wanted_sets(stage):
            prepare_synthetic_set(
                *self._set_arguments(name),
                self.num_workers,
                progress=True,
                variant=self.generated_set(name).variant,
            )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of ``stage`` (generated sets must exist: see :meth:`prepare_data`;
        own sets must hold keypoints: see :meth:`own_sets`)."""
        evaluation = ResizePad(self.image_size)
        own = self.own_sets()
        if stage in (None, "fit"):
            self.datasets["train"] = self.make_train_dataset()
        if stage in (None, "fit", "validate"):
            folder = self.val_dir or self._ready("val")
            self.datasets["val"] = KeypointFolder(folder, evaluation, keypoint_set=own.get("val"))
        if stage in (None, "test"):
            if self.test_dir is not None:
                self.datasets["test"] = KeypointFolder(
                    self.test_dir, evaluation, keypoint_set=own["test"]
                )
            for variant in self.test_sets if self.test_dir is None else ():
                folder = self._ready(f"test_{variant}")
                self.datasets[f"test_{variant}"] = KeypointFolder(folder, evaluation)
        if stage in (None, "predict"):
            folder = self.predict_dir or self.test_dir
            if folder is None:
                folder = self._ready(f"test_{self.test_sets[0]}")
            self.datasets["predict"] = ImageFolder(folder, self.image_size)

    def make_train_dataset(self) -> Dataset:
        """The training dataset of this configuration (synthetic stream or own folder)."""
        if self.train_dir is not None:
            keypoint_set = self._read(self.train_dir)
            if self.train_subset is not None:
                check(
                    self.train_subset <= len(keypoint_set.records),
                    "data",
                    "train_subset",
                    self.train_subset,
                    f"is more than the {len(keypoint_set.records)} images in {self.train_dir}",
                )
                keypoint_set = dataclasses.replace(
                    keypoint_set, records=keypoint_set.records[: self.train_subset]
                )
            self._check_flip_pairs(keypoint_set.class_names)
            self._warn_about_sided_classes(keypoint_set.class_names)
            return KeypointFolder(
                self.train_dir,
                self.train_pipeline,
                self.seed,
                self.ignore,
                keypoint_set,
                flip_pairs=self.flip_pairs,
            )
        noise = self.noise_config if self.noise else None
        return SyntheticKeypoints(
            "train",
            self.train_length,
            self.image_size,
            self.seed,
            self.scene,
            noise,
            self.train_pipeline,
            self.ignore,
        )

    def _warn_about_sided_classes(self, class_names: Sequence[str]) -> None:
        """Warn when horizontal flips may mislabel own classes that name a side
        (``upper_left``) but are in no flip pair."""
        paired = {name for pair in self.flip_pairs for name in pair}
        sided = [
            name
            for name in class_names
            if name not in paired
            and name not in ("top_left", "bottom_right")
            and ("left" in name.lower() or "right" in name.lower())
        ]
        if self.hparams.hflip > 0 and sided:
            rank_zero_warn(
                f"hgtrain: data.hflip={self.hparams.hflip} flips the training images, but the "
                f"classes {sided} name a side and are in no data.flip_pairs, so a flipped "
                "image keeps their old labels: give the pairs (e.g. data.flip_pairs "
                "[[upper_left, upper_right]]) or set data.hflip 0."
            )

    def _set_arguments(self, name: str) -> tuple[Any, ...]:
        """(root, split, size, image_size, seed, scene, noise) of the generated set ``name``."""
        spec = self.generated_set(name)
        return self.root, spec.split, spec.size, self.image_size, self.seed, spec.scene, spec.noise

    def _ready(self, name: str) -> Path:
        path, settings = synthetic_set_path(
            *self._set_arguments(name), self.generated_set(name).variant
        )
        problem = find_problem(path, settings)
        if problem is not None:
            raise RuntimeError(f"{path} {problem}: call prepare_data() before setup()")
        return path

    def _loader(self, dataset: Dataset, **kwargs) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers,
            **{"collate_fn": collate_keypoints, "worker_init_fn": exit_with_parent, **kwargs},
        )

    def train_dataloader(self) -> DataLoader:
        """The training stream: new samples every epoch (except when the trainer overfits a few
        batches), a disjoint share per DDP rank; resumed where a checkpoint left it."""
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        dataset = self.datasets["train"]
        sampler = EpochSampler(
            len(dataset),
            world,
            rank,
            shuffle=self.train_dir is not None,
            seed=self.seed,
            fresh_epochs=not (trainer and trainer.overfit_batches),
        )
        if self.train_dir is not None:
            share = " per device" if world > 1 else ""
            check(
                len(sampler) >= self.batch_size,
                "data",
                "batch_size",
                self.batch_size,
                f"is more than the {len(sampler)} training images{share} of {self.train_dir}, so "
                "no batch is full and nothing would train (the last partial batch is dropped): "
                "lower it, or add images",
            )
        position = self.resume_position
        if position is not None:
            if (position["batch_size"], position["world_size"]) == (self.batch_size, world):
                sampler.resume(position["epoch"], position["batches"] * self.batch_size)
            else:
                rank_zero_warn(
                    "hgtrain: the checkpoint was saved at another batch size or number of "
                    "devices, so its epoch's training stream starts again from the beginning."
                )
        return self._loader(dataset, sampler=sampler, drop_last=True)

    def state_dict(self) -> dict[str, Any]:
        """Where training is in its stream (epoch, batches done in it), saved in every checkpoint
        so that a run resumed mid-epoch sees exactly the batches an uninterrupted one would."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        return {
            "train_position": {
                "epoch": trainer.current_epoch,
                "batches": trainer.fit_loop.epoch_loop.batch_progress.current.processed,
                "batch_size": self.batch_size,
                "world_size": trainer.world_size,
            }
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the training stream's position from a checkpoint (see :meth:`state_dict`)."""
        self.resume_position = state_dict.get("train_position")
        if self.resume_position is not None:  # the stream resumes here, not in the DataLoader
            warnings.filterwarnings(
                "ignore", message=r"You're resuming from a checkpoint that ended"
            )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"])

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader per test set (:attr:`test_set_names`); a single one is returned bare."""
        loaders = [self._loader(self.datasets[name]) for name in self.test_set_names]
        return loaders[0] if len(loaders) == 1 else loaders

    def predict_dataloader(self) -> DataLoader:
        """Batches ``(images uint8 [n, 3, S, S], infos)`` of the images to predict on; unreadable
        images are in the infos only (:func:`hgtrain.data.loading.images.collate_images`)."""
        return self._loader(self.datasets["predict"], collate_fn=collate_images)

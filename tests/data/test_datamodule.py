import json
import math
import re
import warnings
from types import SimpleNamespace

import pytest
import torch

from hgtrain.data.generator.scene import SceneConfig
from hgtrain.data.loading.coco_format import IgnoredKeypointsWarning
from hgtrain.data.loading.datamodule import KeypointDataModule
from hgtrain.data.loading.transforms import IgnoreRule, RandomWindowCrop
from hgtrain.data.sample import CLASS_NAMES
from hgtrain.errors import ConfigError

from .own_sets import inside, points, write_points_set


def small_module(root, **kwargs) -> KeypointDataModule:
    settings = dict(
        root=str(root),
        image_size=48,
        train_length=12,
        val_size=4,
        test_size=4,
        batch_size=2,
        num_workers=0,
        scene=SceneConfig(objects=(1, 2)),
    )
    return KeypointDataModule(**{**settings, **kwargs})


def train_ids(module, epoch=0) -> list[int]:
    loader = module.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return [int(t["image_id"]) for _, targets in loader for t in targets]


def test_exposes_what_the_model_needs(tmp_path):
    module = small_module(tmp_path)
    assert module.num_classes == 3 and module.class_names == CLASS_NAMES
    assert module.image_size == 48
    assert module.test_set_names == ("test_noisy", "test_clean", "test_unseen")


def test_loaders_yield_contract_batches(tmp_path):
    module = small_module(tmp_path)
    module.prepare_data()
    module.setup("fit")
    images, targets = next(iter(module.train_dataloader()))
    assert images.shape == (2, 3, 48, 48) and images.dtype == torch.uint8
    assert len(targets) == 2 and set(targets[0]) >= {"keypoints", "labels", "sizes", "boxes"}
    images, _ = next(iter(module.val_dataloader()))
    assert images.shape == (2, 3, 48, 48)
    module.setup("test")
    noisy, clean, _ = module.test_dataloader()
    (noisy_images, noisy_targets), (clean_images, clean_targets) = (
        next(iter(noisy)),
        next(iter(clean)),
    )
    assert not torch.equal(noisy_images, clean_images)
    torch.testing.assert_close(noisy_targets[0]["keypoints"], clean_targets[0]["keypoints"])


def test_train_loader_is_disjoint_across_ranks_and_new_each_epoch(tmp_path):
    small_module(tmp_path).prepare_data()
    shares = []
    for rank in (0, 1):
        module = small_module(tmp_path)
        module.trainer = SimpleNamespace(world_size=2, global_rank=rank, overfit_batches=0)
        module.setup("fit")
        shares.append(train_ids(module))
    assert len(shares[0]) == len(shares[1]) == 6
    assert set(shares[0]).isdisjoint(shares[1])
    assert sorted(shares[0] + shares[1]) == list(range(12))
    assert set(train_ids(module, epoch=1)) == {12 + i for i in shares[1]}


def test_overfitting_sees_the_same_images_every_epoch(tmp_path):
    small_module(tmp_path).prepare_data()
    module = small_module(tmp_path)
    module.trainer = SimpleNamespace(world_size=1, global_rank=0, overfit_batches=1)
    module.setup("fit")
    assert train_ids(module, epoch=0) == train_ids(module, epoch=3)


def test_setup_without_prepare_data_says_what_to_do(tmp_path):
    module = small_module(tmp_path)
    with pytest.raises(RuntimeError, match="prepare_data"):
        module.setup("validate")


def test_own_data_folders_replace_the_generated_sets(tmp_path):
    generated = small_module(tmp_path / "gen", noise=False)
    generated.prepare_data()
    val_folder = next((tmp_path / "gen" / "synthetic").glob("val-*"))
    module = small_module(tmp_path / "unused", train_dir=str(val_folder), val_dir=str(val_folder))
    module.prepare_data()
    module.setup("fit")
    assert module.class_names == CLASS_NAMES
    images, _ = next(iter(module.train_dataloader()))
    assert images.shape == (2, 3, 48, 48)
    assert not list((tmp_path / "unused" / "synthetic").glob("val-*"))  # no generated val set


def test_hyperparameters_load_with_weights_only(tmp_path):
    module = small_module(tmp_path)
    torch.save(dict(module.hparams), tmp_path / "hparams.pt")
    loaded = torch.load(tmp_path / "hparams.pt", weights_only=True)
    assert loaded["scene"]["objects"] == [1, 2] and loaded["image_size"] == 48  # plain YAML values
    assert SceneConfig(**loaded["scene"]) == module.scene


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="test_sets"):
        small_module(tmp_path, test_sets=["blurry"])


def test_one_scale_augmentation_at_a_time(tmp_path):
    with pytest.raises(ValueError, match=r"data.scale=\[0.5, 1.0\]: must be \[1, 1\] when crop"):
        small_module(tmp_path, scale=(0.5, 1.0), crop_scales=[0.6, 1.3])


def test_crop_scales_put_the_original_crop_in_the_training_pipeline(tmp_path):
    module = small_module(tmp_path, crop_scales=[0.6, 1.3])
    crops = [t for t in module.train_pipeline.transforms if isinstance(t, RandomWindowCrop)]
    assert [c.scales for c in crops] == [(0.6, 1.3)]


def test_an_ignore_rule_applies_to_training_only(tmp_path):
    module = small_module(tmp_path, min_object_size=16.0, min_visible=0.5)
    train = module.make_train_dataset()
    assert train.transform.ignore == IgnoreRule(16.0, 0.5)
    _, target = train[0]
    assert target["ignore"].shape == target["labels"].shape
    assert small_module(tmp_path).make_train_dataset().transform.ignore is None


def test_object_crops_need_their_fallback_scales(tmp_path):
    with pytest.raises(ValueError, match=r"data\.crop_around_objects=True: needs crop_scales"):
        small_module(tmp_path, crop_around_objects=True)


@pytest.mark.parametrize(
    ("split", "stage", "why"),
    [
        ("train", "fit", "training would only teach the network to find none; add annotations"),
        ("val", "validate", r"point AP \(val/map\) is undefined without ground truth; add annot"),
        ("test", "test", r"point AP \(test/map\) .* belong in data\.predict_dir, for predict\)"),
    ],
)
def test_an_own_set_without_keypoints_is_an_error_before_training(tmp_path, split, stage, why):
    empty = str(write_points_set(tmp_path / "empty"))
    module = small_module(tmp_path, **{f"{split}_dir": empty})
    message = rf"^data\.{split}_dir={re.escape(repr(empty))}: holds no keypoints .*: {why}"
    with pytest.raises(ConfigError, match=message):
        _ = module.class_names  # what the CLI asks for while it builds the model: one line
    with pytest.raises(ConfigError, match=message):
        module.setup(stage)


def test_a_malformed_own_set_is_an_error_naming_the_argument(tmp_path):
    folder = write_points_set(tmp_path / "own", {"keypoints": [1, 2, 2, math.nan, 3, 2]})
    module = small_module(tmp_path, train_dir=str(folder))
    with pytest.raises(ConfigError, match=r"^data\.train_dir=.*annotations\.json: annotations\[0"):
        module.own_sets()


def test_each_own_folder_is_read_and_its_ignored_keypoints_reported_once(tmp_path):
    folder = str(write_points_set(tmp_path / "own", inside(19), {"keypoints": points((5, 31))}))
    module = small_module(tmp_path, train_dir=folder, val_dir=folder, test_dir=folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert module.num_classes == 3
        module.setup("fit")
        module.setup("test")
    assert [w.category for w in caught] == [IgnoredKeypointsWarning]
    _, target = module.datasets["val"][0]  # letterboxed 40 x 30 -> 48 x 48: y = 31 is padding
    assert len(target["keypoints"]) == 19 and target["keypoints"][:, 1].max() < 30 * 48 / 40


def own_classes_set(folder):
    """An own set whose only class is ``corner`` (not the synthetic sets' three classes)."""
    write_points_set(folder, inside(4))
    document = json.loads((folder / "annotations.json").read_text())
    document["info"]["keypoint_classes"] = ["corner"]
    (folder / "annotations.json").write_text(json.dumps(document))
    return str(folder)


def test_own_classes_need_own_sets_for_every_split(tmp_path):
    train = own_classes_set(tmp_path / "train")
    with pytest.raises(
        ConfigError, match=r"data.val_dir=None: the generated val set has the classes"
    ):
        _ = KeypointDataModule(train_dir=train, num_workers=0).class_names
    every = {f"{s}_dir": own_classes_set(tmp_path / s) for s in ("val", "test")}
    assert KeypointDataModule(train_dir=train, **every, num_workers=0).class_names == ("corner",)


def test_own_sets_with_different_classes_are_named(tmp_path):
    train = own_classes_set(tmp_path / "train")
    val = str(write_points_set(tmp_path / "val", inside(4)))
    with pytest.raises(ConfigError, match=r"data.val_dir=.*its keypoint classes differ"):
        _ = KeypointDataModule(train_dir=train, val_dir=val, num_workers=0).class_names


def resumed_loader(batch_size: int, saved_batch_size: int = 4):
    module = KeypointDataModule(
        image_size=32, train_length=16, batch_size=batch_size, num_workers=0
    )
    module.load_state_dict(
        {
            "train_position": {
                "epoch": 0,
                "batches": 2,
                "batch_size": saved_batch_size,
                "world_size": 1,
            }
        }
    )
    module.datasets["train"] = module.make_train_dataset()
    return module.train_dataloader()


def test_a_resumed_stream_leaves_out_what_the_checkpoint_trained_on():
    ids = [int(t["image_id"]) for _, targets in resumed_loader(4) for t in targets]
    assert ids == list(range(8, 16))  # the first 2 batches of 4 were trained on


def test_resuming_at_another_batch_size_starts_the_epoch_again_and_says_so():
    with pytest.warns(UserWarning, match="another batch size or number of devices"):
        loader = resumed_loader(2)
    ids = [int(t["image_id"]) for _, targets in loader for t in targets]
    assert ids == list(range(16))

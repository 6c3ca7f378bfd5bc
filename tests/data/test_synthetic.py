import numpy as np
import torch
from torch.utils.data import DataLoader

from hgtrain.data.generator.photometric import PhotometricNoise
from hgtrain.data.loading.collate import collate_keypoints
from hgtrain.data.loading.synthetic import SyntheticKeypoints
from hgtrain.data.loading.transforms import HorizontalFlip


def noisy_train_set() -> SyntheticKeypoints:
    return SyntheticKeypoints(
        "train", 8, 64, seed=3, noise=PhotometricNoise(), pipeline=HorizontalFlip(0.5)
    )


def batches(dataset, num_workers: int) -> list:
    loader = DataLoader(
        dataset, batch_size=3, num_workers=num_workers, collate_fn=collate_keypoints
    )
    return list(loader)


def assert_same_batches(first: list, second: list) -> None:
    assert len(first) == len(second)
    for (images_a, targets_a), (images_b, targets_b) in zip(first, second, strict=True):
        assert torch.equal(images_a, images_b)
        for target_a, target_b in zip(targets_a, targets_b, strict=True):
            assert target_a.keys() == target_b.keys()
            for key in target_a:
                assert torch.equal(target_a[key], target_b[key]), key


def test_samples_do_not_depend_on_the_number_of_workers():
    assert_same_batches(batches(noisy_train_set(), 0), batches(noisy_train_set(), 2))


def test_samples_are_identical_across_runs_and_ignore_global_random_state():
    first = batches(noisy_train_set(), 0)
    np.random.seed(123)
    torch.manual_seed(123)
    assert_same_batches(first, batches(noisy_train_set(), 0))


def test_augmentation_leaves_the_global_torch_generator_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    noisy_train_set()[0]
    assert torch.equal(torch.rand(3), expected)


def test_every_epoch_brings_new_images():
    dataset = noisy_train_set()
    first_epoch, second_epoch = dataset.sample(2), dataset.sample(2 + len(dataset))
    assert not np.array_equal(first_epoch.image, second_epoch.image)
    assert first_epoch.image_id != second_epoch.image_id


def test_splits_differ_and_noise_keeps_the_scene():
    clean = SyntheticKeypoints("test", 4, 64)
    noisy = SyntheticKeypoints("test", 4, 64, noise=PhotometricNoise(probability=1.0))
    val = SyntheticKeypoints("val", 4, 64)
    a, b = clean.sample(1), noisy.sample(1)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.keypoints, val.sample(1).keypoints)


def test_target_matches_the_contract():
    image, target = SyntheticKeypoints("val", 4, 64)[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)
    assert image.is_contiguous()  # a transposed memory layout once made every step 2x slower
    n = len(target["keypoints"])
    assert target["keypoints"].dtype == torch.float32 and target["keypoints"].shape == (n, 2)
    assert target["labels"].dtype == torch.int64 and target["labels"].shape == (n,)
    assert target["sizes"].dtype == torch.float32 and target["sizes"].shape == (n, 2)
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1] == 4
    assert target["image_id"].dtype == torch.int64 and target["image_id"].ndim == 0
    owners = target["boxes"][target["object_ids"]]
    torch.testing.assert_close(target["sizes"], owners[:, 2:] - owners[:, :2])

"""The best checkpoint (``BestCheckpoint`` on val/map, mode max, as ``hgtrain fit`` has it) is never
chosen on a validation epoch whose images hold no keypoints: val/map is NaN there, not a
placeholder number, and a NaN score is no candidate."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from hgtrain.training.checkpoints import BestCheckpoint
from tests.checkpoints import tiny_module
from tests.helpers import keypoint_batch


class ValidationBatch(Dataset):
    """One validation batch, with its keypoints only in the ``labelled`` epochs."""

    def __init__(self, module: L.LightningModule, labelled: set[int]) -> None:
        self.module = module
        self.labelled = labelled

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int):
        images, targets = keypoint_batch(seed=5)
        if self.module.current_epoch not in self.labelled:
            empty = {"keypoints": torch.zeros(0, 2), "labels": torch.zeros(0, dtype=torch.long)}
            targets = [
                {**t, **empty, "sizes": torch.zeros(0, 2), "boxes": torch.zeros(0, 4)}
                for t in targets
            ]
        return images, targets


def fit_two_epochs(tmp_path, labelled: set[int]) -> tuple[BestCheckpoint, list[float]]:
    """Two epochs of one step, validated after each; the best checkpoint and val/map per epoch."""
    module = tiny_module()
    best = BestCheckpoint(tmp_path, "best-{epoch}", monitor="val/map", mode="max")
    maps = []

    class RecordMap(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            maps.append(trainer.callback_metrics["val/map"].item())

    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        callbacks=[best, RecordMap()],
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    train = DataLoader([keypoint_batch(seed=0)], batch_size=None)
    val = DataLoader(ValidationBatch(module, labelled), batch_size=None)
    with pytest.warns(UserWarning, match=r"val images of this epoch hold no keypoints.*NaN"):
        trainer.fit(module, train, val)
    return best, maps


def test_an_epoch_without_ground_truth_never_replaces_the_best_checkpoint(tmp_path):
    best, maps = fit_two_epochs(tmp_path, labelled={0})
    assert maps[0] >= 0 and torch.tensor(maps[1]).isnan()
    assert best.best_model_path == str(tmp_path / "best-epoch=0.ckpt")
    assert best.best_model_score.item() == maps[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-epoch=0.ckpt"]


def test_a_scored_epoch_replaces_an_earlier_one_without_ground_truth(tmp_path):
    best, maps = fit_two_epochs(tmp_path, labelled={1})
    assert torch.tensor(maps[0]).isnan() and maps[1] >= 0
    assert best.best_model_path == str(tmp_path / "best-epoch=1.ckpt")
    assert best.best_model_score.item() == maps[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-epoch=1.ckpt"]


def test_without_ground_truth_in_any_epoch_there_is_no_best_checkpoint(tmp_path):
    best, maps = fit_two_epochs(tmp_path, labelled=set())
    assert all(torch.tensor(m).isnan() for m in maps)
    assert best.best_model_path == "" and not list(tmp_path.iterdir())

"""``PredictionWriter``: what ``hgtrain predict`` leaves behind, one JSON file of keypoints.

The file is a COCO-style list of results, one per predicted keypoint, in the image's own pixels::

    [{"image_id": 0, "file_name": "street/0001.jpg", "class_id": 0, "class_name": "top_left",
      "keypoints": [x, y, 1], "score": 0.93}, ...]

sorted by image, then by descending score. ``image_id`` is the image's place in the folder's
sorted file list; x and y are continuous pixel coordinates (pixel i covers [i, i + 1)).
Predictions on the letterbox padding are dropped. Unreadable images are named and skipped.

Under DDP every rank writes its share to a part file beside the output; after a barrier, rank 0
merges them into one file, written atomically, and removes the parts. With ``overlays`` each
image is also saved as a PNG with its keypoints drawn, in a folder beside the JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image
from torch import Tensor
from torchvision.utils import draw_keypoints

from hgtrain.atomic import write_file_atomically
from hgtrain.data.loading.images import ImageInfo, to_original_pixels
from hgtrain.errors import ConfigError
from hgtrain.tools.data_preview import PALETTE

__all__ = ["PredictionWriter"]

DEFAULT_NAME = "predictions.json"


class PredictionWriter(BasePredictionWriter):
    """Writes the keypoints that ``predict`` decodes to one JSON file (and optional overlays).

    Args:
        output: the JSON file; default ``predictions.json`` in the run folder (the logger's
            ``log_dir``, else the trainer's ``default_root_dir``).
        overwrite: replace an existing ``output`` (otherwise predict stops before it starts).
        overlays: also save each image with its keypoints drawn, as PNGs in ``<output stem>_overlays/``.
        overlay_threshold: keypoints drawn on the overlays only above this score (the JSON holds
            every decoded keypoint, down to the model's ``score_threshold``).
    """

    def __init__(
        self,
        output: str | None = None,
        overwrite: bool = False,
        overlays: bool = False,
        overlay_threshold: float = 0.3,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output = output
        self.overwrite = overwrite
        if output is not None:
            self.check_free(Path(output))
        self.overlays = overlays
        self.overlay_threshold = overlay_threshold
        self.path: Path | None = None
        self.results: list[dict[str, Any]] = []
        self.skipped: list[tuple[str, str]] = []
        self.images = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Decide where the file goes, and refuse to replace one unless ``overwrite``."""
        if stage != "predict":
            return
        folder = trainer.log_dir if trainer.loggers else trainer.default_root_dir
        self.path = Path(self.output) if self.output else Path(folder or ".") / DEFAULT_NAME
        self.check_free(self.path)
        self.results, self.skipped, self.images = [], [], 0

    def check_free(self, path: Path) -> None:
        """A :class:`ConfigError` (one line in the CLI) for an existing ``path``, unless
        ``overwrite``: earlier results are never replaced by accident."""
        if path.exists() and not self.overwrite:
            raise ConfigError(
                "prediction",
                "output",
                str(path),
                "exists; pass --prediction.overwrite true to replace it",
            )

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: list[dict[str, Tensor]],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the batch's keypoints in original pixels; report its unreadable images."""
        _, infos = batch
        readable = [info for info in infos if info["error"] is None]
        for info in infos:
            if info["error"] is not None:
                print(f"hgtrain predict: skipped {info['path']}: {info['error']}", file=sys.stderr)
                self.skipped.append((info["path"], info["error"]))
        names = pl_module.hparams.get("class_names") or []
        for info, found in zip(readable, prediction, strict=True):
            self.images += 1
            keypoints, inside = to_original_pixels(found["keypoints"].float().cpu(), info)
            scores, labels = found["scores"].cpu()[inside], found["labels"].cpu()[inside]
            found_here = zip(keypoints.tolist(), scores.tolist(), labels.tolist(), strict=True)
            for point, score, label in found_here:
                self.results.append(
                    {
                        "image_id": info["index"],
                        "file_name": info["file"],
                        "class_id": label,
                        "class_name": names[label] if label < len(names) else f"class_{label}",
                        "keypoints": [round(point[0], 2), round(point[1], 2), 1],
                        "score": round(score, 5),
                    }
                )
            if self.overlays:
                shown = scores > self.overlay_threshold
                self.draw_overlay(info, keypoints[shown], labels[shown])

    def draw_overlay(self, info: ImageInfo, keypoints: Tensor, labels: Tensor) -> None:
        """Save the image with its keypoints drawn in their class colours (those of
        ``hgtrain data-preview``)."""
        with Image.open(info["path"]) as picture:
            image = torch.from_numpy(np.array(picture.convert("RGB"))).permute(2, 0, 1)
        for label in labels.unique().tolist():
            points = keypoints[labels == label] - 0.5  # marks are centred on integer coordinates
            colour = PALETTE[label % len(PALETTE)]
            image = draw_keypoints(image, points.unsqueeze(0), colors=colour, radius=3)
        folder = self.path.with_name(f"{self.path.stem}_overlays")
        target = folder / Path(info["file"]).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(target)

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Each rank writes its part; rank 0 merges the parts into the output file."""
        part = self.part_path(trainer.global_rank)
        share = {"results": self.results, "skipped": self.skipped, "images": self.images}
        write_json_atomically(part, share)
        trainer.strategy.barrier("hgtrain-predictions")
        if trainer.is_global_zero:
            parts = [self.part_path(rank) for rank in range(trainer.world_size)]
            shares = [json.loads(p.read_text()) for p in parts]
            results = [r for share in shares for r in share["results"]]
            results.sort(key=lambda r: (r["image_id"], -r["score"]))
            write_json_atomically(self.path, results)
            for p in parts:
                p.unlink()
            images = sum(share["images"] for share in shares)
            skipped = [path for share in shares for path, _ in share["skipped"]]
            note = f"; skipped {len(skipped)} unreadable: {', '.join(skipped)}" if skipped else ""
            rank_zero_info(
                f"hgtrain predict: wrote {len(results)} keypoints of {images} images to "
                f"{self.path}{note}"
            )
        trainer.strategy.barrier("hgtrain-predictions-merged")

    def part_path(self, rank: int) -> Path:
        """Where ``rank`` writes its share before the merge."""
        return self.path.with_name(f".{self.path.name}.rank{rank}.part")


def write_json_atomically(path: Path, content: Any) -> None:
    """Write ``content`` as JSON to ``path``, whole or not at all (:mod:`hgtrain.atomic`)."""
    write_file_atomically(path, lambda file: file.write(json.dumps(content, indent=1).encode()))

"""Point-detection average precision with distance thresholds, as a DDP-safe torchmetrics Metric.

Convention: keypoints are (x, y) in input pixels (pixel i covers [i, i+1)); distances are Euclidean
in input pixels and a detection within `threshold` (inclusive) of a ground-truth point can match it.
An image letterboxed into the input is judged on itself alone: detections on its padding (beyond
its target's `image_size`) do not count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from hgtrain.task.decode import on_image

__all__ = ["PointAP"]


class PointAP(Metric):
    """Per-class point AP at distance thresholds, localisation error and recall (SuperPoint-style).

    Matching (in `update`, per image and class): detections in descending score order each take the
    nearest still-unmatched ground-truth point of their class within the threshold; the rest
    (duplicates included) are false positives. AP (in `compute`) ranks all detections of a class
    across images by score, with all-point interpolation (area under the precision envelope;
    recall counts missed points); detections with equal scores form one operating point, so the
    result does not depend on the order images arrive in (one process or several).

    `compute()` returns, with `{t}` the threshold formatted with `:g` (1, 2, 4, 1.5):
        `map`: mean of the `map@{t}`; `map@{t}`: mean AP over classes that have ground truth;
        `ap@{t}/{name}` and `ap/{name}` (mean over thresholds) per class; `name` is
        `class_names[c]` or `class_{c}`;
        `recall@{t}`: class-mean recall using at most `max_detections` top-scored detections per
        image (all classes together);
        `loc_error`: mean distance (input pixels) of the matched detections at the largest
        threshold.
    A value that is not defined is NaN: `map`, `map@{t}` and `recall@{t}` when no class has ground
    truth, a class's `ap` when it has none, `loc_error` when nothing matched. (torchmetrics'
    MeanAveragePrecision says -1 instead; NaN cannot pass for a score: Lightning's ModelCheckpoint
    ranks it below every value, EarlyStopping stops on it, plots show a gap.)

    States are 1-D float32 lists reduced with "cat" (plus per-class ground-truth counts reduced
    with "sum"), so a DDP run equals one process on the same data, also when a rank saw no images.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        num_classes: int,
        thresholds: Sequence[float] = (1.0, 2.0, 4.0),
        max_detections: int = 100,
        class_names: Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not thresholds or any(t <= 0 for t in thresholds):
            raise ValueError(f"thresholds must be positive distances in pixels, got {thresholds}")
        if max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
        self.num_classes = num_classes
        self.thresholds = tuple(float(t) for t in thresholds)
        self.max_detections = max_detections
        self.class_names = list(class_names or (f"class_{c}" for c in range(num_classes)))

        for name in ("scores", "labels", "ranks", "match_distance"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        for i in range(len(self.thresholds)):
            self.add_state(f"tp_{i}", default=[], dist_reduce_fx="cat")
        self.add_state("num_gt", default=torch.zeros(num_classes), dist_reduce_fx="sum")

    def update(
        self, preds: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]]
    ) -> None:
        """Match one batch. `preds`: per image `keypoints` [N, 2], `scores` [N], `labels` [N];
        `targets`: per image `keypoints` [M, 2] and `labels` [M], and optionally `image_size`
        (height, width): the part of the input, from its top-left, that a letterboxed image
        fills; detections beyond it lie on the padding and are left out (other keys are
        ignored)."""
        if len(preds) != len(targets):
            raise ValueError(f"got {len(preds)} prediction dicts for {len(targets)} target dicts")
        if len(preds) == 0:
            return
        preds = [_on_image(pred, target) for pred, target in zip(preds, targets, strict=True)]
        det_points, det_scores, det_labels, det_counts = _flatten(preds, with_scores=True)
        gt_points, _, gt_labels, gt_counts = _flatten(targets, with_scores=False)
        for labels, what in ((det_labels, "predicted"), (gt_labels, "target")):
            if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(f"{what} labels must be in [0, {self.num_classes})")

        matches = _BatchMatches(len(det_scores), len(self.thresholds))
        det_start = gt_start = 0
        for n_det, n_gt in zip(det_counts, gt_counts, strict=True):
            det = slice(det_start, det_start + n_det)
            gt = slice(gt_start, gt_start + n_gt)
            matches.add_image(
                det,
                det_points[det],
                det_scores[det],
                det_labels[det],
                gt_points[gt],
                gt_labels[gt],
                self.thresholds,
            )
            det_start, gt_start = det_start + n_det, gt_start + n_gt

        def state(array: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

        self.scores.append(state(det_scores))
        self.labels.append(state(det_labels))
        self.ranks.append(state(matches.ranks))
        self.match_distance.append(state(matches.distance))
        for i in range(len(self.thresholds)):
            getattr(self, f"tp_{i}").append(state(matches.tp[i]))
        counts = np.bincount(gt_labels, minlength=self.num_classes)
        self.num_gt += torch.from_numpy(counts).to(self.num_gt)

    def compute(self) -> dict[str, Tensor]:
        scores = self._cat(self.scores)
        labels = self._cat(self.labels).long()
        ranks = self._cat(self.ranks)
        num_gt = self.num_gt
        has_gt = num_gt > 0
        undefined = torch.tensor(torch.nan, device=scores.device)

        result: dict[str, Tensor] = {}
        ap_per_threshold = []
        for i, threshold in enumerate(self.thresholds):
            tp = self._cat(getattr(self, f"tp_{i}"))
            ap = torch.stack(
                [
                    _average_precision(scores[labels == c], tp[labels == c], num_gt[c])
                    for c in range(self.num_classes)
                ]
            )
            ap_per_threshold.append(ap)
            tag = f"{threshold:g}"
            result[f"map@{tag}"] = ap[has_gt].mean() if has_gt.any() else undefined
            for c, name in enumerate(self.class_names):
                result[f"ap@{tag}/{name}"] = ap[c] if has_gt[c] else undefined
            found = torch.zeros_like(num_gt).index_add_(
                0, labels, tp * (ranks < self.max_detections)
            )
            recall = found[has_gt] / num_gt[has_gt]
            result[f"recall@{tag}"] = recall.mean() if has_gt.any() else undefined

        result["map"] = torch.stack([result[f"map@{t:g}"] for t in self.thresholds]).mean()
        mean_ap = torch.stack(ap_per_threshold).mean(dim=0)
        for c, name in enumerate(self.class_names):
            result[f"ap/{name}"] = mean_ap[c] if has_gt[c] else undefined
        largest = max(range(len(self.thresholds)), key=lambda i: self.thresholds[i])
        matched = self._cat(getattr(self, f"tp_{largest}")) > 0
        distance = self._cat(self.match_distance)
        result["loc_error"] = distance[matched].mean() if matched.any() else undefined
        return result

    def _cat(self, state: list[Tensor] | Tensor) -> Tensor:
        if isinstance(state, Tensor):
            return state
        if not state:
            return torch.zeros(0, device=self.device)
        return torch.cat(state)


class _BatchMatches:
    """Per-detection results of one `update`: tp flag per threshold, distance, rank in its image."""

    def __init__(self, num_detections: int, num_thresholds: int) -> None:
        self.tp = np.zeros((num_thresholds, num_detections), dtype=np.float32)
        self.distance = np.zeros(num_detections, dtype=np.float32)
        self.ranks = np.zeros(num_detections, dtype=np.float32)

    def add_image(
        self,
        det: slice,
        det_points: np.ndarray,
        det_scores: np.ndarray,
        det_labels: np.ndarray,
        gt_points: np.ndarray,
        gt_labels: np.ndarray,
        thresholds: Sequence[float],
    ) -> None:
        order = np.argsort(-det_scores, kind="stable")
        ranks = np.empty(len(order), dtype=np.float32)
        ranks[order] = np.arange(len(order))
        self.ranks[det] = ranks
        largest = int(np.argmax(thresholds))
        for c in np.intersect1d(det_labels, gt_labels):
            dets = order[det_labels[order] == c]
            gts = gt_points[gt_labels == c]
            distances = np.linalg.norm(det_points[dets, None, :] - gts[None, :, :], axis=2)
            for i, threshold in enumerate(thresholds):
                matched_gt = _greedy_match(distances, threshold)
                hit = matched_gt >= 0
                self.tp[i, det.start + dets[hit]] = 1.0
                if i == largest:
                    self.distance[det.start + dets[hit]] = distances[hit, matched_gt[hit]]


def _greedy_match(distances: np.ndarray, threshold: float) -> np.ndarray:
    """Rows (detections, best first) take the nearest unmatched column within threshold; -1 if none."""
    matched_gt = np.full(distances.shape[0], -1)
    taken = np.zeros(distances.shape[1], dtype=bool)
    for row in np.flatnonzero(distances.min(axis=1) <= threshold):
        candidates = np.where(taken | (distances[row] > threshold), np.inf, distances[row])
        column = int(np.argmin(candidates))
        if np.isfinite(candidates[column]):
            taken[column] = True
            matched_gt[row] = column
    return matched_gt


def _average_precision(scores: Tensor, tp: Tensor, num_gt: Tensor) -> Tensor:
    """All-point interpolated AP of one class; equal scores form a single operating point."""
    if num_gt == 0 or scores.numel() == 0:
        return torch.zeros((), device=scores.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    scores, tp = scores[order], tp[order]
    last_of_tie = torch.ones_like(scores, dtype=torch.bool)
    last_of_tie[:-1] = scores[1:] != scores[:-1]
    true_pos = torch.cumsum(tp, 0)[last_of_tie]
    false_pos = torch.cumsum(1 - tp, 0)[last_of_tie]
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / num_gt
    envelope = precision.flip(0).cummax(0).values.flip(0)
    recall_step = torch.diff(recall, prepend=recall.new_zeros(1))
    return (recall_step * envelope).sum()


def _on_image(pred: dict[str, Tensor], target: dict[str, Tensor]) -> dict[str, Tensor]:
    """`pred` without the detections on the letterbox padding beyond the target's `image_size`
    (see :func:`~hgtrain.task.decode.on_image`); unchanged when the target has none."""
    size = target.get("image_size")
    if size is None:
        return pred
    points = pred["keypoints"].reshape(-1, 2)
    inside = on_image(points, size.flip(0))  # (width, height), like the points' (x, y)
    return {**pred, **{key: pred[key][inside] for key in ("keypoints", "scores", "labels")}}


def _flatten(
    items: Sequence[dict[str, Tensor]], with_scores: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Concatenate per-image dicts and move them to host numpy in one transfer per field."""
    counts = [item["keypoints"].shape[0] for item in items]
    points = torch.cat([item["keypoints"].detach().reshape(-1, 2).float() for item in items])
    labels = torch.cat([item["labels"].detach().reshape(-1).long() for item in items])
    if labels.shape[0] != points.shape[0]:
        raise ValueError("every image needs one label per keypoint")
    scores = np.zeros(0, dtype=np.float32)
    if with_scores:
        scores = torch.cat([item["scores"].detach().reshape(-1).float() for item in items])
        if scores.shape[0] != points.shape[0]:
            raise ValueError("every image needs one score per predicted keypoint")
        scores = scores.cpu().numpy()
    return points.cpu().numpy(), scores, labels.cpu().numpy(), counts

"""Heatmap decoding: logits -> per-image keypoints (x, y, score, class) in input pixels.

Convention: an (h, w) map for an (H, W) input scales by sx = w / W, sy = h / H; a peak at cell
(i, j) with offset (ox, oy) decodes to x = (i + ox) / sx, y = (j + oy) / sy; without an offset head
the cell centre (ox = oy = 0.5) is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["EDGE_SLACK", "decode_keypoints", "on_image"]

EDGE_SLACK = 1.0
"""How far (input pixels) past a letterboxed image's right and bottom edges a keypoint still
counts as on the image: a corner on the edge falls in the first cell past it and decodes up to
its offset beyond (see :func:`on_image`)."""


def decode_keypoints(
    heatmap_logits: Tensor,
    offsets: Tensor | None,
    input_size: tuple[int, int],
    top_k: int = 100,
    nms_kernel: int = 3,
    score_threshold: float = 0.0,
) -> list[dict[str, Tensor]]:
    """CornerNet-style decoding: sigmoid, max-pool NMS, top-K over classes x cells, + offset.

    Args:
        heatmap_logits: [B, C, h, w] heatmap logits (one stack's output).
        offsets: [B, 2, h, w] sub-pixel offsets (x, y) in cells, [B, C, 2, h, w] per class (each
            detection reads its class's), or None for cell centres. They are
            clamped to [0, 1], the range of their targets, so a keypoint stays in the cell that
            detected it, and inside the image.
        input_size: (H, W) of the network input, to map cells back to input pixels.
        top_k: detections kept per image before the threshold (at most C * h * w).
        nms_kernel: odd window of the max-pool NMS; a cell survives if it is its window's maximum.
        score_threshold: keep detections with score strictly above this (0 drops suppressed cells).

    Returns one dict per image: `keypoints` float [k, 2] (x, y input pixels), `scores` [k] and
    `labels` int64 [k], in descending score order.
    """
    if heatmap_logits.dim() != 4:
        raise ValueError(f"heatmap_logits must be [B, C, h, w], got {tuple(heatmap_logits.shape)}")
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"nms_kernel must be a positive odd number, got {nms_kernel}")
    batch, classes, h, w = heatmap_logits.shape
    shapes = [(batch, 2, h, w), (batch, classes, 2, h, w)]
    if offsets is not None and tuple(offsets.shape) not in shapes:
        raise ValueError(f"offsets must be [B, 2, h, w] or [B, C, 2, h, w], one of {shapes}, "
                         f"got {tuple(offsets.shape)}")  # fmt: skip

    scores = _peaks(heatmap_logits.float().sigmoid(), nms_kernel)
    k = min(top_k, scores[0].numel())
    top_scores, top_index = scores.flatten(1).topk(k, dim=1)
    labels = top_index // (h * w)
    cells = top_index % (h * w)
    cell_x, cell_y = (cells % w).float(), (cells // w).float()
    if offsets is None:
        dx = dy = torch.full_like(top_scores, 0.5)
    else:
        if offsets.dim() == 5:  # per class: the detection's own class's offsets
            flat, index = offsets.float().transpose(1, 2).reshape(batch, 2, -1), top_index
        else:
            flat, index = offsets.float().flatten(2), cells
        picked = flat.gather(2, index.unsqueeze(1).expand(-1, 2, -1))
        dx, dy = picked.clamp(0.0, 1.0).unbind(dim=1)
    in_h, in_w = input_size
    keypoints = torch.stack([(cell_x + dx) * (in_w / w), (cell_y + dy) * (in_h / h)], dim=2)

    keep = top_scores > score_threshold
    return [
        {
            "keypoints": keypoints[i][keep[i]],
            "scores": top_scores[i][keep[i]],
            "labels": labels[i][keep[i]],
        }
        for i in range(batch)
    ]


def on_image(keypoints: Tensor, extent: Tensor, slack: float = EDGE_SLACK) -> Tensor:
    """bool [k]: which ``keypoints`` [k, 2] (x, y input pixels) lie on an image that fills the
    input from its top-left to ``extent`` (width, height), the rest being letterbox padding.

    The image's right and bottom edges are on it (box corners of objects that reach them lie
    there), and so is up to ``slack`` past them, where such a corner may decode; anything further
    is on the padding and says nothing about the image.
    """
    extent = extent.to(keypoints) + slack
    return ((keypoints >= 0) & (keypoints <= extent)).all(dim=-1)


def _peaks(scores: Tensor, kernel: int) -> Tensor:
    """Zero every score that is not the maximum of its kernel x kernel window."""
    window_max = F.max_pool2d(scores, kernel, stride=1, padding=kernel // 2)
    return scores * (scores == window_max)

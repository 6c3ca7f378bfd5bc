"""The keypoint-heatmap task: targets, losses, decoding and metrics."""

"""Public metrics of hgtrain (torchmetrics `Metric`s), in the style of `torchmetrics.detection`."""

from hgtrain.task.metrics import PointAP

__all__ = ["PointAP"]

"""Hourglass backbones of the CornerNet family, their heads, and weight conversion."""

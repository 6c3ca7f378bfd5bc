"""An independent, plain re-implementation of the CornerNet-Lite backbones (test oracle)."""

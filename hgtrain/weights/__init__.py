"""Weights in and out: pretrained backbones from checkpoints and files (:mod:`.pretrained`), the
original CornerNet-Lite key layout (:mod:`.convert`), and export for reuse and deployment
(:mod:`.export`, :mod:`.deploy`)."""

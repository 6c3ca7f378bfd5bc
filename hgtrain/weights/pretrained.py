"""``load_backbone``: a pretrained hourglass backbone from a file, in one line.

Accepted files (the format is recognised from the content, never from the name):

- a backbone written by ``hgtrain export`` (``"format": "hgtrain-backbone"``): weights, exact
  architecture, input normalisation and provenance;
- an hgtrain training checkpoint (Lightning ``.ckpt``): the architecture comes from its
  hyperparameters, and ``with_heads=True`` gives back the whole trained network (a
  :class:`~hgtrain.models.network.KeypointNet`: normalisation, backbone, heads, decoding);
- an original CornerNet-Lite checkpoint: a ``torch.save``'d state dict with ``module.hg.*`` keys,
  heads included (``CornerNet_Squeeze_500000.pkl`` and its siblings);
- an ECCV'18 CornerNet checkpoint (``module.kps.*``, ``module.pre.*``, ...);
- a bare hgtrain backbone state dict (``pre.*``, ``hgs.*``, ``cnvs.*``, ...).

Wrapper prefixes are dropped first: ``module.`` (DataParallel / DDP), ``model.``, and
``torch.compile``'s ``_orig_mod.`` wherever it occurs. Where the file records no architecture, it is
inferred from the keys and shapes. Files are read with ``torch.load(weights_only=True)``, so loading
cannot run code.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, overload

import torch

from hgtrain.models.backbone import HourglassBackbone, HourglassConfig
from hgtrain.models.network import KeypointNet, KeypointNetConfig, resolve_backbone_config
from hgtrain.weights.convert import from_cornernet_lite, infer_config, load_state_exactly

BACKBONE_FORMAT = "hgtrain-backbone"
BACKBONE_FORMAT_VERSION = 1
WRAPPER_PREFIXES = ("module.", "model.")
NETWORK_PARTS = ("backbone.", "heads.")
"""Key prefixes of a :class:`KeypointNet`'s state; the training module holds it as ``model.``."""
STEM_INPUT_WEIGHT = "pre.0.conv.weight"
ORIGINAL_NORMALIZATION = {  # CornerNet-Lite's BGR images / 255 (core/dbs/coco.py)
    "pixel_mean": [0.40789654, 0.44719302, 0.47026115],
    "pixel_std": [0.28863828, 0.27408164, 0.27809835],
}
COMPILE_PREFIX = "_orig_mod."
MODES = ("train", "eval", "frozen")

Mode = Literal["train", "eval", "frozen"]
InputOrder = Literal["as_trained", "rgb"]
INPUT_ORDERS = ("as_trained", "rgb")


@dataclass(frozen=True)
class StoredBackbone:
    """A backbone as a file holds it.

    Attributes:
        state: the weights, in hgtrain's key layout (``pre.*``, ``hgs.*``, ...).
        config: the architecture: recorded in the file (exports, training checkpoints) or inferred
            from the weights (original checkpoints, bare state dicts).
        normalization: ``{"pixel_mean": [...], "pixel_std": [...]}`` the weights were trained
            with, when the file records it (for original CornerNet-Lite files: the original's).
        channel_order: the colour order the weights expect: ``"bgr"`` for original CornerNet-Lite
            and CornerNet files, ``"rgb"`` for hgtrain's.
    """

    state: dict[str, torch.Tensor]
    config: HourglassConfig
    normalization: dict[str, list[float]] | None
    channel_order: Literal["rgb", "bgr"] = "rgb"

    def for_rgb_input(self) -> StoredBackbone:
        """These weights for RGB input: BGR-trained ones (the original CornerNet-Lite and CornerNet
        files) get the stem's input channels and their normalisation reversed."""
        if self.channel_order == "rgb":
            return self
        state = dict(self.state)
        state[STEM_INPUT_WEIGHT] = state[STEM_INPUT_WEIGHT].flip(1)
        normalization = {k: v[::-1] for k, v in (self.normalization or {}).items()} or None
        return StoredBackbone(state, self.config, normalization, "rgb")


def read_checkpoint(path: str | os.PathLike[str], mmap: bool = False) -> Any:
    """``torch.load`` a file on the CPU with ``weights_only=True`` and a clear error when it fails;
    ``mmap`` maps the tensors instead of reading them (to look at a big checkpoint's metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch.load fails in many ways on a damaged or foreign file
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), repr(err))
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated, corrupt, or another format): "
            f"{reason}"
        ) from err


def is_backbone_export(content: Any) -> bool:
    """True for the content of a file written by ``hgtrain export`` in its own format."""
    return isinstance(content, Mapping) and content.get("format") == BACKBONE_FORMAT


def is_training_checkpoint(content: Any) -> bool:
    """True for a Lightning checkpoint that has the hyperparameters to rebuild its module."""
    return (
        isinstance(content, Mapping)
        and isinstance(content.get("state_dict"), Mapping)
        and isinstance(content.get("hyper_parameters"), Mapping)
    )


def strip_wrappers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the prefixes of wrappers: ``module.`` and ``model.`` in front, and
    ``torch.compile``'s ``_orig_mod.`` wherever it is (``backbone._orig_mod.pre.*``)."""
    stripped = {}
    for key, value in state.items():
        key = key.replace(COMPILE_PREFIX, "")
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        stripped[key] = value
    return stripped


def stored_state(content: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict in a file: its ``state_dict`` entry or the content itself, wrappers stripped."""
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        content = content["state_dict"]
    if (
        not isinstance(content, Mapping)
        or not content
        or not all(isinstance(v, torch.Tensor) for v in content.values())
    ):
        raise ValueError(
            f"{source} holds no state dict of tensors; expected a backbone from 'hgtrain export', "
            "an hgtrain training checkpoint, a CornerNet-Lite or CornerNet checkpoint, or an "
            "hgtrain backbone state dict."
        )
    return strip_wrappers(content)


def backbone_state_dict(content: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The backbone weights, in hgtrain's key layout, out of whatever ``read_checkpoint`` returned."""
    state = stored_state(content, source)
    if any(k.startswith("backbone.") for k in state):
        return {
            k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")
        }
    if any(k.startswith("hgs.") for k in state):  # ECCV'18 files have "pre." keys too
        return state
    backbone, _ = from_cornernet_lite(state)
    return backbone


def check_export(content: Mapping[str, Any], source: str) -> None:
    """A ``ValueError`` for an export of a format version this hgtrain cannot read, or a damaged one."""
    version = content.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= BACKBONE_FORMAT_VERSION:
        raise ValueError(
            f"{source} is an hgtrain backbone of format version {version!r}, but this hgtrain "
            f"reads versions 1 to {BACKBONE_FORMAT_VERSION}: upgrade hgtrain to load it."
        )
    missing = [k for k in ("state_dict", "config", "input") if k not in content]
    if missing:
        raise ValueError(f"{source} is a damaged hgtrain backbone export: no {', '.join(missing)}.")


def stored_backbone(content: Any, source: str = "checkpoint") -> StoredBackbone:
    """The backbone weights, architecture and normalisation out of any accepted file's content."""
    if is_backbone_export(content):
        check_export(content, source)
        normalization = {k: list(content["input"][k]) for k in ("pixel_mean", "pixel_std")}
        return StoredBackbone(
            stored_state(content, source), HourglassConfig(**content["config"]), normalization
        )
    state = backbone_state_dict(content, source)
    hparams = content.get("hyper_parameters") if is_training_checkpoint(content) else None
    if hparams and "backbone" in hparams:
        normalization = None
        if "pixel_mean" in hparams and "pixel_std" in hparams:
            normalization = {k: list(hparams[k]) for k in ("pixel_mean", "pixel_std")}
        return StoredBackbone(state, resolve_backbone_config(hparams["backbone"]), normalization)
    if any(key.startswith(("hgs.", "backbone.")) for key in stored_state(content, source)):
        return StoredBackbone(state, infer_config(state), None)
    return StoredBackbone(state, infer_config(state), dict(ORIGINAL_NORMALIZATION), "bgr")


def architecture_differences(stored: HourglassConfig, model: HourglassConfig) -> list[str]:
    """``field: stored in the file vs the model`` for every field that shapes the weights."""
    return [
        f"{f.name} {getattr(stored, f.name)!r} (the model: {getattr(model, f.name)!r})"
        for f in fields(HourglassConfig)
        if f.name not in ("name", "return_mergs")
        and getattr(stored, f.name) != getattr(model, f.name)
    ]


def load_backbone_weights(
    backbone: HourglassBackbone,
    path: str | os.PathLike[str],
    pixel_mean: Sequence[float] | None = None,
    pixel_std: Sequence[float] | None = None,
) -> StoredBackbone:
    """Load the backbone weights of any accepted file into an existing backbone, strictly, for
    RGB input (BGR-trained original weights get their stem flipped: :meth:`StoredBackbone.for_rgb_input`).

    A file of another variant or size is a ``ValueError`` that names the architecture fields that
    differ and the missing, unexpected and mis-shaped keys. When the file records the input
    normalisation the weights were trained with and ``pixel_mean`` / ``pixel_std`` differ from it,
    a warning says so (the pretrained features would see shifted inputs).
    """
    source = str(path)
    stored = stored_backbone(read_checkpoint(path), source).for_rgb_input()
    try:
        load_state_exactly(backbone, stored.state, source)
    except ValueError as err:
        differences = architecture_differences(stored.config, backbone.config)
        if not differences:
            raise
        raise ValueError(
            f"{source} holds another architecture than this model: {', '.join(differences)}. {err}"
        ) from err
    given = {"pixel_mean": pixel_mean, "pixel_std": pixel_std}
    if stored.normalization and any(
        value is not None and [float(v) for v in value] != stored.normalization[key]
        for key, value in given.items()
    ):
        warnings.warn(
            f"The backbone in {source} was trained on inputs normalised with "
            f"pixel_mean={stored.normalization['pixel_mean']}, "
            f"pixel_std={stored.normalization['pixel_std']}; this model uses "
            f"pixel_mean={list(pixel_mean or [])}, pixel_std={list(pixel_std or [])}. "
            "Set the same values to fine-tune from the features it learned.",
            stacklevel=2,
        )
    return stored


def upgrade_state_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A training module's state with the network under ``model.``: checkpoints written before
    the network became a module of its own keep ``backbone.*`` and ``heads.*`` at the top."""
    return {("model." + k if k.startswith(NETWORK_PARTS) else k): v for k, v in state.items()}


def keypoint_net(content: Any, source: str) -> KeypointNet:
    """The trained :class:`KeypointNet` (normalisation, backbone, heads) of a training checkpoint."""
    if not is_training_checkpoint(content):
        kind = "an exported backbone" if is_backbone_export(content) else "a state dict"
        raise ValueError(
            f"{source} is {kind}, which holds no heads; with_heads=True needs an hgtrain training "
            "checkpoint (a Lightning .ckpt with hyper_parameters)."
        )
    hparams = {k: v for k, v in content["hyper_parameters"].items() if not k.startswith("_")}
    try:
        network = KeypointNet(KeypointNetConfig.from_hparams(hparams))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source} records a network hgtrain cannot build: {err}") from err
    state = {k: v for k, v in stored_state(content, source).items() if k.startswith(NETWORK_PARTS)}
    load_state_exactly(network, state, source)
    return network


def set_mode(model: torch.nn.Module, mode: Mode) -> None:
    """``"train"`` or ``"eval"`` mode; ``"frozen"`` is eval mode with every ``requires_grad`` off."""
    model.train(mode == "train")
    if mode == "frozen":
        model.requires_grad_(False)


@overload
def load_backbone(
    path: str | os.PathLike[str],
    *,
    with_heads: Literal[False] = False,
    mode: Mode = "train",
    input_order: InputOrder = "as_trained",
) -> HourglassBackbone: ...
@overload
def load_backbone(
    path: str | os.PathLike[str],
    *,
    with_heads: Literal[True],
    mode: Mode = "train",
    input_order: InputOrder = "as_trained",
) -> KeypointNet: ...
def load_backbone(
    path: str | os.PathLike[str],
    *,
    with_heads: bool = False,
    mode: Mode = "train",
    input_order: InputOrder = "as_trained",
) -> HourglassBackbone | KeypointNet:
    """Build the backbone that the weights in ``path`` belong to, and load them strictly.

    No config is needed: the architecture is the one recorded in the file, or inferred from the keys
    and shapes. The result is on the CPU.

    Args:
        path: any file listed in this module's docstring.
        with_heads: return the whole trained network of an hgtrain training checkpoint (a
            :class:`KeypointNet`: normalisation, backbone, heads and decoding; a plain
            ``nn.Module`` that needs no Lightning) instead of the backbone alone.
        mode: ``"train"``, ``"eval"``, or ``"frozen"`` (eval mode and no gradients; a parent
            module's ``.train()`` puts BatchNorm back in training mode).
        input_order: ``"as_trained"`` keeps the weights as stored; ``"rgb"`` makes BGR-trained
            original CornerNet-Lite weights take RGB input by flipping the stem's input channels
            (:func:`input_normalization` gives the matching mean and std). hgtrain's own weights
            are RGB already.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if input_order not in INPUT_ORDERS:
        raise ValueError(f"input_order must be one of {INPUT_ORDERS}, got {input_order!r}")
    source = str(path)
    content = read_checkpoint(path)
    if with_heads:
        model = keypoint_net(content, source)
    else:
        stored = stored_backbone(content, source)
        if input_order == "rgb":
            stored = stored.for_rgb_input()
        model = HourglassBackbone(stored.config)
        load_state_exactly(model, stored.state, source)
    set_mode(model, mode)
    return model


def input_normalization(
    path: str | os.PathLike[str], input_order: InputOrder = "as_trained"
) -> dict[str, list[float]] | None:
    """``{"pixel_mean": [...], "pixel_std": [...]}`` of [0, 1] images that the weights in ``path``
    were trained with, in the channel order of :func:`load_backbone` with the same
    ``input_order``; ``None`` when the file does not say (a bare state dict)."""
    stored = stored_backbone(read_checkpoint(path), str(path))
    return (stored.for_rgb_input() if input_order == "rgb" else stored).normalization

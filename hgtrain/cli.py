"""The ``hgtrain`` command: Lightning's ``fit``, ``validate``, ``test``, ``predict``, plus tools.

``hgtrain fit --config squeeze.yaml`` finds ``squeeze.yaml`` in the working directory, then in
``./configs/``, then among the configs shipped inside the package, so the documented commands work
from anywhere after ``pip install``. ``--config`` may be given several times; later ones win.
"""

from __future__ import annotations

import importlib
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ThroughputMonitor
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from hgtrain import __version__
from hgtrain.callbacks import KeypointImageLogger, RunFactsLogger, batch_size
from hgtrain.data.datamodule import KeypointDataModule
from hgtrain.module import HourglassKeypointModule

TOOLS = {
    "export": ("hgtrain.export", "write a trained backbone to a file of its own"),
    "benchmark": ("hgtrain.benchmark", "time training steps of a backbone (images/s, memory)"),
    "data-benchmark": ("hgtrain.data.benchmark", "samples/s of the synthetic data pipeline"),
    "data-preview": ("hgtrain.data.preview", "a PNG grid of samples, keypoints and targets"),
}

MONITOR = "val/map"


def find_config(name: str) -> str:
    """Path of a config given as a path, a name in ``./configs/``, or a config shipped in hgtrain."""
    candidates = [Path(name), Path("configs") / name]
    shipped = resources.files("hgtrain") / "configs" / name
    for path in candidates:
        if path.is_file():
            return str(path)
    if shipped.is_file():
        return str(shipped)
    available = sorted(p.name for p in (resources.files("hgtrain") / "configs").iterdir())
    raise SystemExit(
        f"hgtrain: config {name!r} not found in the working directory, ./configs/ or the package; "
        f"shipped configs: {', '.join(available)}"
    )


def resolve_config_args(args: list[str]) -> list[str]:
    """Replace every ``--config X`` / ``--config=X`` / ``-c X`` value by the path it refers to."""
    resolved, take_next = [], False
    for arg in args:
        if take_next:
            resolved.append(find_config(arg))
            take_next = False
        elif arg in ("--config", "-c"):
            resolved.append(arg)
            take_next = True
        elif arg.startswith("--config="):
            resolved.append("--config=" + find_config(arg.split("=", 1)[1]))
        else:
            resolved.append(arg)
    return resolved


class ConfigInCheckpoint(SaveConfigCallback):
    """Saves ``config.yaml`` in the log directory (as Lightning does) and stores the resolved
    config in every checkpoint, under ``checkpoint["hgtrain"]``, with the hgtrain version."""

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint["hgtrain"] = {
            "version": __version__,
            "config": yaml.safe_load(
                self.parser.dump(self.config, skip_none=False, skip_link_targets=False)
            ),
        }


class HgtrainCLI(LightningCLI):
    """``LightningCLI`` with the data linked to the model and the checkpoint's data config restored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        given = kwargs.get("args")
        self.command_line = list(sys.argv[1:] if given is None else given)
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_size", "model.input_size", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After fit, test the best checkpoint on the DataModule's test sets.",
        )

    def after_fit(self) -> None:
        """Test the best checkpoint when the config asks for it (``test_after_fit: true``)."""
        if self.config.fit.get("test_after_fit"):
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best")

    def _parse_ckpt_path(self) -> None:
        """Lightning restores the model's arguments from ``--ckpt_path``; restore the data's too,
        so that ``hgtrain validate --ckpt_path X`` needs no config."""
        super()._parse_ckpt_path()
        if not self.config.get("subcommand"):
            return
        subcommand = self.config.subcommand
        ckpt_path = self.config[subcommand].get("ckpt_path")
        data_given = any(
            arg.startswith(("--data.", "--data=", "--config", "-c")) for arg in self.command_line
        )
        if not ckpt_path or not Path(ckpt_path).is_file() or data_given:
            return
        checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        data = dict(checkpoint.get("datamodule_hyper_parameters", {}))
        data.pop("_instantiator", None)
        data.pop("_class_path", None)
        if data:
            self.config = self.parser.parse_object({subcommand: {"data": data}}, self.config)


def trainer_defaults() -> dict[str, Any]:
    """TensorBoard logging, best-and-last checkpoints and throughput, unless a config says otherwise."""
    return {
        "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": "runs", "name": "hgtrain", "default_hp_metric": False},
        },
        "callbacks": [
            ModelCheckpoint(
                monitor=MONITOR,
                mode="max",
                filename="best-{epoch}-{step}",
                auto_insert_metric_name=False,
            ),
            # Lightning's save_last only follows new best checkpoints; this one follows every epoch.
            ModelCheckpoint(filename="last", enable_version_counter=False),
            LearningRateMonitor(logging_interval="step"),
            ThroughputMonitor(batch_size_fn=batch_size, window_size=10),
            KeypointImageLogger(),
            RunFactsLogger(),
        ],
    }


def build_cli(args: list[str] | None = None, run: bool = True) -> HgtrainCLI:
    """The Lightning CLI of hgtrain; with ``run=False`` it only instantiates model, data and trainer."""
    tools = "; ".join(f"'hgtrain {name}': {text}" for name, (_, text) in TOOLS.items())
    if args is None:
        sys.argv[1:] = resolve_config_args(sys.argv[1:])
    else:
        args = resolve_config_args(args)
    return HgtrainCLI(
        HourglassKeypointModule,
        KeypointDataModule,
        args=args,
        run=run,
        trainer_defaults=trainer_defaults(),
        save_config_callback=ConfigInCheckpoint,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": f"hgtrain {__version__}. Other commands: {tools}."},
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of ``hgtrain``: a tool (``hgtrain export ...``) or a Lightning subcommand."""
    argv = sys.argv[1:] if args is None else args
    if argv and argv[0] in TOOLS:
        importlib.import_module(TOOLS[argv[0]][0]).main(list(argv[1:]))
    elif argv[:1] in (["--version"], ["-V"]):
        print(f"hgtrain {__version__}")
    else:
        build_cli(args)


if __name__ == "__main__":
    main()

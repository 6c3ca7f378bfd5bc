"""The training subcommands of ``hgtrain``: Lightning's ``fit``, ``validate``, ``test``, ``predict``.

``hgtrain fit --config squeeze.yaml`` finds ``squeeze.yaml`` in the working directory, then in
``./configs/``, then among the configs shipped inside the package, so the documented commands work
from anywhere after ``pip install``. ``--config`` may be given several times; later ones win.

The defaults (TensorBoard, the checkpoints, the learning-rate, throughput, image and run-facts
callbacks) are ordinary config values: ``--print_config`` shows them and a config can change or
replace them. With ``--ckpt_path``, the checkpoint's model and data arguments are the base and
whatever the command line or a config file says overrides them, field by field.
"""

from __future__ import annotations

import multiprocessing
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from hgtrain import __version__
from hgtrain.cli.console import CompactModelSummary, quiet_known_noise, results_table
from hgtrain.data.loading.coco_format import DatasetFormatError
from hgtrain.data.loading.datamodule import KeypointDataModule
from hgtrain.errors import ConfigError, find_settings_error
from hgtrain.training.callbacks import real_loggers
from hgtrain.training.checkpoints import AtomicCheckpointIO, ResumableCheckpoints, SIGINTException
from hgtrain.training.divergence import DivergenceError, DivergenceGuard
from hgtrain.training.module import HourglassKeypointModule
from hgtrain.training.prediction_writer import PredictionWriter
from hgtrain.weights.pretrained import read_checkpoint

MONITOR = "val/map"
LIGHTNING_CKPT_PATHS = ("last", "best", "hpc", "registry")
"""``--ckpt_path`` values that Lightning resolves itself rather than naming a file."""
SETTINGS_ARGUMENTS = {"SceneConfig": "data.scene", "PhotometricNoise": "data.noise_config"}
"""The argument that holds each settings dataclass, to name it in an error."""
SIGTERM_EXIT_STATUS = 143
"""128 + SIGTERM: the exit status of a job stopped by SIGTERM, which schedulers read as such."""
SIGINT_EXIT_STATUS = 130
"""128 + SIGINT: the exit status of a run stopped by Ctrl-C (after saving ``last.ckpt``)."""
MOVED_MODULES = {
    "hgtrain.callbacks": "hgtrain.training.callbacks",
    "hgtrain.checkpointing": "hgtrain.training.checkpoints",
    "hgtrain.divergence": "hgtrain.training.divergence",
    "hgtrain.module": "hgtrain.training.module",
    "hgtrain.prediction_writer": "hgtrain.training.prediction_writer",
    "hgtrain.metrics": "hgtrain.task.metrics",
}
"""Modules of hgtrain 0.6 that a saved ``config.yaml`` may name (its callbacks' class paths)."""
MOVED_PATTERN = r"\b(" + "|".join(re.escape(m) for m in MOVED_MODULES) + r")\.\w"
LINKED = {
    "data.num_classes": "model.num_classes",
    "data.image_size": "model.input_size",
    "data.class_names": "model.class_names",
}


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


def readable_config(name: str) -> str:
    """:func:`find_config`, and the file must be a YAML mapping: otherwise one line naming it."""
    path = find_config(name)
    text = Path(path).read_text()
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or error
        raise SystemExit(f"hgtrain: config {path} is not valid YAML{where}: {problem}") from None
    if content is not None and not isinstance(content, dict):
        raise SystemExit(f"hgtrain: config {path} must be a mapping (model:, data:, trainer:)")
    moved = sorted(set(re.findall(MOVED_PATTERN, text)))
    if moved:
        replacements = " and ".join(f"'{old}.' by '{MOVED_MODULES[old]}.'" for old in moved)
        raise SystemExit(
            f"hgtrain: config {path} names modules of hgtrain 0.6 ({', '.join(moved)}), which "
            f"hgtrain 0.7 moved: replace {replacements} in the file"
        )
    return path


def resolve_config_args(args: list[str]) -> list[str]:
    """Replace every ``--config X`` / ``--config=X`` / ``-c X`` value by the path it refers to."""
    resolved, take_next = [], False
    for arg in args:
        if take_next:
            resolved.append(readable_config(arg))
            take_next = False
        elif arg in ("--config", "-c"):
            resolved.append(arg)
            take_next = True
        elif arg.startswith("--config="):
            resolved.append("--config=" + readable_config(arg.split("=", 1)[1]))
        else:
            resolved.append(arg)
    return resolved


def default_logger() -> dict[str, Any]:
    """TensorBoard under ``runs/hgtrain/version_N`` (the hparams metrics come from RunFactsLogger)."""
    return {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "hgtrain", "default_hp_metric": False},
    }


def default_callbacks() -> list[dict[str, Any]]:
    """The callbacks every run has unless a config replaces ``trainer.callbacks``."""
    return [
        {
            "class_path": "hgtrain.training.checkpoints.BestCheckpoint",
            "init_args": {
                "monitor": MONITOR,
                "mode": "max",
                "filename": "best-{epoch}-{step}",
                "auto_insert_metric_name": False,
            },
        },
        # Lightning's save_last only follows new best checkpoints; this one follows every epoch.
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"filename": "last", "enable_version_counter": False},
        },
        {
            "class_path": "lightning.pytorch.callbacks.LearningRateMonitor",
            "init_args": {"logging_interval": "step"},
        },
        {
            "class_path": "lightning.pytorch.callbacks.ThroughputMonitor",
            "init_args": {
                "batch_size_fn": "hgtrain.training.callbacks.batch_size",
                "window_size": 10,
            },
        },
        {"class_path": "hgtrain.training.callbacks.KeypointImageLogger"},
        {"class_path": "hgtrain.training.callbacks.RunFactsLogger"},
    ]


def claim_version_directory(logger: TensorBoardLogger | CSVLogger) -> None:
    """Create the logger's next ``version_N`` folder atomically and pin the logger to it, so that
    runs started together in one directory never share (and overwrite) a run folder.

    Only for a logger whose version was left to Lightning; called on global rank 0 only (the other
    ranks write nothing themselves, and Lightning broadcasts rank 0's log directory to them).
    """
    if logger._version is not None:
        return
    root = Path(logger.root_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = logger._get_next_version()
    while True:
        try:
            (root / f"version_{version}").mkdir()
        except FileExistsError:
            version += 1
            continue
        logger._version = version
        return


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
    """``LightningCLI`` with the data linked to the model, the defaults in the config, checkpoint
    arguments restored field by field, run folders that never collide, one-line errors, and the
    results as one compact table."""

    trained_input_size: int | None = None

    def add_arguments_to_parser(self, parser: Any) -> None:
        for source, target in LINKED.items():
            parser.link_arguments(source, target, apply_on="instantiate")
        parser.set_defaults(
            {"trainer.logger": default_logger(), "trainer.callbacks": default_callbacks()}
        )
        parser.add_lightning_class_args(ResumableCheckpoints, "resumable")
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After fit, test the best checkpoint (the last weights when there is none) on "
            "the DataModule's test sets.",
        )

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> Any:
        """Lightning's subcommand parser; ``predict`` also gets the ``--prediction.*`` options of
        the :class:`PredictionWriter` that writes its results."""
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "predict":
            parser.add_lightning_class_args(PredictionWriter, "prediction")
        if subcommand in ("validate", "test"):  # print_results shows the headline metrics
            parser.set_defaults(verbose=False)
        return parser

    def parse_arguments(self, parser: Any, args: list[str] | None) -> None:
        """Parse once; with ``--ckpt_path``, parse again on top of the checkpoint's arguments
        (``--print_config`` waits for that second parse, so that it shows what will run)."""
        given = sys.argv[1:] if args is None else list(args)
        first = [arg for arg in given if not arg.startswith("--print_config")]
        self.config = parser.parse_args(first)
        stored = self.checkpoint_arguments()
        for key, value in stored.items():
            try:
                self._parser(self.config.subcommand).set_defaults({key: value})
            except KeyError:
                rank_zero_info(f"hgtrain: the checkpoint's {key} is no argument any more; ignored.")
        if stored or first != given:
            self.config = parser.parse_args(given)
        self.check_accelerator()
        if self.config.get("subcommand") == "predict" and not self.config.predict.get("ckpt_path"):
            self.parser.error("predict needs --ckpt_path: the checkpoint whose network predicts")

    def check_accelerator(self) -> None:
        """A GPU config on a machine without a GPU ends in one line that names the CPU preset."""
        subcommand = self.config.get("subcommand")
        trainer = self.config[subcommand].trainer if subcommand else self.config.trainer
        if str(trainer.accelerator) in ("gpu", "cuda") and not torch.cuda.is_available():
            raise SystemExit(
                f"hgtrain: this config trains on GPUs (trainer.accelerator={trainer.accelerator}, "
                f"trainer.devices={trainer.devices}) but no GPU is available here: add "
                "--config cpu.yaml to run it on the CPU."
            )

    def checkpoint_arguments(self) -> dict[str, Any]:
        """``{"model.x": ..., "data.y": ...}`` stored in the ``--ckpt_path`` checkpoint, if any."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or ckpt_path in LIGHTNING_CKPT_PATHS or "://" in ckpt_path:
            return {}
        if not Path(ckpt_path).is_file():
            self.parser.error(f"ckpt_path={ckpt_path}: no such file")
        try:  # mmap: only the hyperparameters are read here, not gigabytes of weights
            checkpoint = read_checkpoint(ckpt_path, mmap=True)
        except ValueError:
            checkpoint = None
        if not isinstance(checkpoint, dict):
            self.parser.error(
                f"ckpt_path={ckpt_path}: not a readable checkpoint (empty, truncated, or another "
                "kind of file)"
            )
        if not isinstance(checkpoint.get("state_dict"), dict):
            self.parser.error(
                f"ckpt_path={ckpt_path}: not a training checkpoint (no state_dict); an exported "
                "backbone goes to --model.backbone_weights"
            )
        stored = {}
        for group, key in (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters")):
            for name, value in checkpoint.get(key, {}).items():
                if not name.startswith("_") and f"{group}.{name}" not in LINKED.values():
                    stored[f"{group}.{name}"] = value
        self.trained_input_size = checkpoint.get("hyper_parameters", {}).get("input_size")
        return stored

    def _parse_ckpt_path(self) -> None:
        """Done in :meth:`parse_arguments`, with the command line winning over the checkpoint."""

    def before_instantiate_classes(self) -> None:
        """Say so when a checkpoint is evaluated at another input size than it was trained at."""
        trained = self.trained_input_size
        subcommand = self.config.get("subcommand")
        if subcommand and trained is not None:
            size = self.config[subcommand].data.image_size
            if size != trained:
                rank_zero_info(
                    f"hgtrain: the checkpoint was trained at {trained} px and runs at "
                    f"data.image_size={size} px, as the command line or a config asks."
                )

    def instantiate_classes(self) -> None:
        """Instantiate model, data and trainer; a bad argument value ends in one line naming it."""
        try:
            super().instantiate_classes()
        except ConfigError as error:
            source = {target: source for source, target in LINKED.items()}.get(error.key)
            self.parser.error(f"{error} (set from {source})" if source else str(error))
        except ValueError as error:  # jsonargparse wraps what a settings dataclass raises
            refusal = find_settings_error(error)
            if refusal is None:
                raise
            self.parser.error(
                f"{SETTINGS_ARGUMENTS.get(refusal.settings, refusal.settings)}: {refusal}"
            )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, with its run folder claimed, atomic checkpoint writes and a compact model
        summary; without a logger, the learning-rate monitor (which needs one) is left out with a
        message."""
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks = [
            CompactModelSummary(max_depth=c._max_depth) if type(c) is ModelSummary else c
            for c in trainer.callbacks
        ]
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if not trainer.loggers:
            monitors = [c for c in trainer.callbacks if isinstance(c, LearningRateMonitor)]
            if monitors:
                rank_zero_info("hgtrain: no logger, so the learning rate is not logged.")
                trainer.callbacks = [c for c in trainer.callbacks if c not in monitors]
        if rank_zero_only.rank == 0:
            for logger in trainer.loggers:
                if isinstance(logger, (TensorBoardLogger, CSVLogger)):
                    claim_version_directory(logger)
        return trainer

    def after_fit(self) -> None:
        """With ``test_after_fit``, test the best checkpoint, or the last weights when no
        validation produced one (a short run) and under ``fast_dev_run``."""
        if not self.config.fit.get("test_after_fit"):
            return
        trainer = self.trainer
        if trainer.interrupted:
            rank_zero_info("hgtrain: fit was interrupted, so test_after_fit is skipped.")
            return
        best = next(
            (
                c.best_model_path
                for c in trainer.checkpoint_callbacks
                if isinstance(c, ModelCheckpoint) and c.monitor and c.best_model_path
            ),
            None,
        )
        if best is None:
            reason = "fast_dev_run" if trainer.fast_dev_run else "no best checkpoint was saved"
            rank_zero_info(f"hgtrain: {reason}, so the test runs on the last weights.")
        trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)
        self.after_test()

    def after_validate(self) -> None:
        """The validation results as one table (``--verbose true`` adds Lightning's table)."""
        self.print_results(["val"], "validation")

    def after_test(self) -> None:
        """The test results as one table, a column per test set (``--verbose true`` adds
        Lightning's table of every metric)."""
        self.print_results(self.model.test_set_names, "test")

    def print_results(self, prefixes: list[str], what: str) -> None:
        """The headline metrics of ``prefixes``' sets, and where the full breakdown is."""
        metrics = {key: float(value) for key, value in self.trainer.callback_metrics.items()}
        if any(key.startswith(f"{prefix}/") for key in metrics for prefix in prefixes):
            table = results_table(metrics, prefixes, self.model.val_metric.class_names)
            where = (
                "the full breakdown is in the logger"
                if real_loggers(self.trainer)
                else "no logger: --verbose true on test or validate prints every metric"
            )
            rank_zero_info(f"{what} results ({where}):\n{table}")


def build_cli(args: list[str] | None = None, run: bool = True) -> HgtrainCLI:
    """The Lightning CLI of hgtrain; with ``run=False`` it only instantiates model, data and trainer."""
    quiet_known_noise()
    if args is None:
        sys.argv[1:] = resolve_config_args(sys.argv[1:])
    else:
        args = resolve_config_args(args)
    try:
        return run_cli(args, run)
    except SIGTERMException:
        end_child_processes()
        raise SystemExit(SIGTERM_EXIT_STATUS) from None
    except SIGINTException:
        end_child_processes()
        raise SystemExit(SIGINT_EXIT_STATUS) from None
    except (DivergenceError, DatasetFormatError, ConfigError) as error:
        raise SystemExit(f"hgtrain: {error}") from None


def end_child_processes() -> None:
    """SIGKILL this process's multiprocessing children (DataLoader workers) before a SIGTERM or
    Ctrl-C exit.

    The workers ignore SIGTERM (:mod:`hgtrain.data.loading.workers`) and a first Ctrl-C
    (:class:`ResumableCheckpoints`). A loader that Lightning shuts down tells its workers to
    stop, but one that the SIGTERM interrupted (validation with persistent workers) leaves them
    running, and at exit multiprocessing "terminates" its daemonic children with SIGTERM and then
    waits for them: for ever. The run is over and its checkpoint saved, so nothing they hold is
    needed.
    """
    for child in multiprocessing.active_children():
        child.kill()
        child.join()


def run_cli(args: list[str] | None, run: bool) -> HgtrainCLI:
    """:class:`HgtrainCLI` with hgtrain's classes and defaults."""
    return HgtrainCLI(
        HourglassKeypointModule,
        KeypointDataModule,
        args=args,
        run=run,
        save_config_callback=ConfigInCheckpoint,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        seed_everything_default=0,
        parser_kwargs={
            "prog": "hgtrain",
            "description": f"hgtrain {__version__}",
            **{
                name: {"usage": f"hgtrain {name} [--config FILE] [--option value ...]"}
                for name in ("fit", "validate", "test", "predict")
            },
        },
    )

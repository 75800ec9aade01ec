"""Helpers shared by the end-to-end tests (tests/conftest.py puts tests/ on sys.path, so test modules import this directly)."""
import json
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl


class Crash(pl.Callback):
    """The process "dies" at the start of epoch ``k``, after epoch ``k - 1`` was checkpointed."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.k:
            raise RuntimeError("simulated interruption")


def fit_quietly(model, dm, epochs: int) -> pl.Trainer:
    """Train ``model`` on ``dm`` for ``epochs`` epochs on the CPU: no logger, checkpoints or validation."""
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, accelerator="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm)
    return trainer


def assert_one_process_reproduces(run_dir: Path, method_cls) -> dict:
    """Re-test a run folder's best checkpoint in one process, on its re-read split; every figure must equal the
    run's ``results.json`` (e.g. a multi-process run's). Returns the run's results."""
    from lightning_hash.experiment import build_datamodule

    results = json.loads((Path(run_dir) / "results.json").read_text())
    dm = build_datamodule(results["config"], Path(run_dir))
    model = method_cls.load_from_checkpoint(results["model_selection"]["best_checkpoint"], map_location="cpu")
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         use_distributed_sampler=False)
    single = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert set(single) == set(results["metrics"])
    for key, value in single.items():
        assert value == pytest.approx(results["metrics"][key], abs=1e-6), key
    return results


def load_experiment_script(name: str):
    """A script of ``experiments/`` (e.g. ``"diagnose_agnet_ibir"``) imported as a module, for testing its pure
    functions; the scripts are not a package."""
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

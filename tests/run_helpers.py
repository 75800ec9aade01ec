"""A simulated interruption for the resume tests (imported by the test modules; pytest puts tests/ on sys.path)."""
import pytorch_lightning as pl


class Crash(pl.Callback):
    """The process "dies" at the start of epoch ``k``, after epoch ``k - 1`` was checkpointed."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.k:
            raise RuntimeError("simulated interruption")

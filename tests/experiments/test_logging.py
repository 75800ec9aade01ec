"""Training values reach the logger: every trained method logs ``train/loss`` on exactly the steps Lightning writes.

Lightning writes logged step values when ``(batches stepped + 1) % log_every_n_steps == 0``. A method that
decides on its own rule (``global_step % n == 0`` was one) logs on other steps: then a written row carries a
value from an earlier step (or, when the epoch ends first, nothing reaches CSV or W&B at all).
"""
import csv

import pytest
import pytorch_lightning as pl

from lightning_hash.experiment import main

# method -> (epochs, extra flags): AgNet's second stage (A2H) starts after stage1_epochs
TRAINED = {"djsrh": (1, []), "dvb": (1, []), "tvdb": (1, []), "vsb2net": (1, []), "zsih": (1, []),
           "agnet": (2, ["--set", "method.stage1_epochs=1"])}
STEPS, EVERY = 10, 3


class _BatchCounter(pl.Callback):
    def __init__(self):
        self.batch = -1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batch += 1


@pytest.mark.parametrize("method", sorted(TRAINED))
def test_train_loss_rows_every_log_every_n_steps(tmp_path, monkeypatch, method):
    counter, logged = _BatchCounter(), {}
    original = pl.LightningModule.log

    def recording_log(self, name, value, *args, **kwargs):
        if name == "train/loss":
            logged[counter.batch] = float(value)
        return original(self, name, value, *args, **kwargs)

    monkeypatch.setattr(pl.LightningModule, "log", recording_log)
    out = tmp_path / method
    epochs, extra = TRAINED[method]
    main(["--method", method, "--logger", "csv", "--no-progress-bar", "--max-epochs", str(epochs),
          "--output", str(out), "--set", f"trainer.limit_train_batches={STEPS}",
          "--set", f"trainer.log_every_n_steps={EVERY}", *extra], callbacks=[counter])
    with open(out / "csv" / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss") not in (None, "")]
    written = {int(r["step"]): float(r["train/loss"]) for r in rows}
    # rows after batches 3, 6, 9, ... (the step counter is 2, 5, 8, ... when the row is written)
    assert sorted(written) == list(range(EVERY - 1, epochs * STEPS, EVERY)), sorted(written)
    for step, value in written.items():   # each row holds the loss of its own step, not an earlier one
        assert step in logged and value == pytest.approx(logged[step], rel=1e-6), (step, value, logged)

#!/usr/bin/env python
"""Framework overhead: one DJSRH training epoch through our LightningModule + Trainer vs a bare PyTorch loop.

    python experiments/bench_overhead.py [--data wiki] [--repeats 5] [--threads 1]

Both arms, in the same process, on the same DataModule (``--data``, batch 32, z-scored features as in
lightning_hash/configs/djsrh.yaml), the same shuffled batch order (the DataModule's train loader at epoch 0), the
same initial weights and the same math: the bare loop calls ``joint_semantics_matrix`` and ``djsrh_loss`` from
lightning_hash/methods/djsrh.py, with the model's own heads and its ``configure_optimizers()`` (SGD), alpha =
sqrt(1). The Lightning arm runs ``Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)`` ``.fit``, so it pays for
``self.log`` calls, hooks and the Trainer's setup and teardown. Timed: the whole ``fit`` call, and the epoch alone
(from ``on_train_epoch_start`` to ``on_train_epoch_end``); the bare loop from its first batch to its last step.
Arms alternate, ``--repeats`` times each after one warm-up each; the medians are compared. A third arm, for
attribution, repeats the Lightning run with ``self.log`` made a no-op (DJSRH logs 5 values per step). After each pair the
two models' weights are checked equal (the same math on the same data in the same order).
"""
import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="wiki")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import pytorch_lightning as pl
    import torch

    import datamodules
    from lightning_hash import methods
    from lightning_hash.methods.djsrh import djsrh_loss, joint_semantics_matrix

    torch.set_num_threads(args.threads)
    dm = datamodules.create(args.data, seed=args.seed, batch_size=32, standardize=True)
    dm.prepare_data()
    dm.setup("fit")
    hp = dict(beta=0.3, lambda1=0.3, lambda2=0.3, lr_image=0.01, lr_text=0.01)   # the Wiki settings
    pl.seed_everything(args.seed, verbose=False)
    template = methods.create("djsrh", image_dim=dm.input_dims["image"], text_dim=dm.input_dims["text"], **hp)
    n_batches = len(dm.train_dataloader())

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self.seconds = time.perf_counter() - self.start

    def lightning_epoch(log=True):
        model = copy.deepcopy(template)
        if not log:     # attribution only: the same run with self.log made a no-op
            model.log = lambda *a, **k: None
        timer = EpochTimer()
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                             num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=[timer])
        start = time.perf_counter()
        trainer.fit(model, train_dataloaders=dm.train_dataloader())
        return time.perf_counter() - start, timer.seconds, model

    def bare_epoch():
        model = copy.deepcopy(template)
        model.train()
        optimizer = model.configure_optimizers()
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(0)               # what Lightning does at the start of epoch 0
        alpha = 1.0                               # sqrt(epoch), epoch counted from 1
        start = time.perf_counter()
        for batch in loader:
            images, texts = batch["image"], batch["text"]
            S = joint_semantics_matrix(images, texts, beta=hp["beta"], eta=model.hparams.eta)
            codes_i = torch.tanh(alpha * model.image_head(images))
            codes_t = torch.tanh(alpha * model.text_net(texts))
            loss, _ = djsrh_loss(codes_i, codes_t, S, mu=model.hparams.mu, lambda1=hp["lambda1"],
                                 lambda2=hp["lambda2"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start, model

    lightning_epoch(), bare_epoch()     # warm-up
    fits, epochs, bares, nolog = [], [], [], []
    max_diff = 0.0
    for _ in range(args.repeats):
        fit_s, epoch_s, m_pl = lightning_epoch()
        bare_s, m_bare = bare_epoch()
        fits.append(fit_s)
        epochs.append(epoch_s)
        bares.append(bare_s)
        nolog.append(lightning_epoch(log=False)[0])
        for a, b in zip(m_pl.state_dict().values(), m_bare.state_dict().values()):
            max_diff = max(max_diff, float((a.float() - b.float()).abs().max()))
    fit_m, epoch_m, bare_m = (statistics.median(x) for x in (fits, epochs, bares))
    print(f"DJSRH, {args.data}: {len(dm.train_dataset)} training items, {n_batches} batches of 32, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} repeats (medians)")
    print(f"bare PyTorch loop     : {bare_m:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in bares)})")
    print(f"Lightning, epoch only : {epoch_m:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in epochs)})  "
          f"ratio {epoch_m / bare_m:.2f}x")
    print(f"Lightning, whole fit(): {fit_m:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in fits)})  "
          f"ratio {fit_m / bare_m:.2f}x   (target <= 1.2x)")
    nolog_m = statistics.median(nolog)
    print(f"Lightning fit(), self.log a no-op: {nolog_m:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in nolog)})  "
          f"ratio {nolog_m / bare_m:.2f}x   (attribution: the cost of the 5 self.log calls per step)")
    print(f"max |weight difference| after the epoch: {max_diff:.2e}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Does DVB's training objective prefer the codes that retrieve better? DVB's codes against ITQ's, random and
class-oracle codes, scored by the part of eq. 3.15 that depends on the codes alone.

    python experiments/diagnose_dvb_objective.py DVB_RUN ITQ_RUN [--batches 40] [--seed 0] [--json FILE]

``DVB_RUN`` and ``ITQ_RUN`` are run folders written by ``run.py`` on the same split (their split files must
agree; e.g. ``dvb`` and ``itq`` of ``experiments/grids/dvb_cifar10_deep.yaml`` at one code length and seed).
``--batches`` training batches of the DVB run's batch size are drawn with ``--seed`` (without replacement) from
the training split. On each batch, for every set of sign codes ``B`` (``N_B x m``, entries +-1):

* ``H2 = ||B^T B - N_B I||_F^2 / N_B`` (eq. 3.11 with the run's ``h2_scale``; :func:`decorrelation_loss`);
* ``H3 = trace(B^T S B)`` with ``S`` the Laplacian of the batch affinity ``A`` of eq. 3.12 on the raw features,
  with the run's ``t`` and ``t_scale`` (:func:`batch_affinity`, :func:`similarity_loss`);
* the weighted sum ``a2 H2 + a3 H3`` with the run's weights, everything divided by ``N_B`` as in training.

``H1`` (eq. 3.10) is 0 for sign codes and the KL / centre terms do not read the codes, so this sum is what
eq. 3.15 says about a set of codes. The code sets: the DVB run's (its validation-chosen checkpoint, eq. 3.16),
the ITQ run's, random codes (+-1 per item and bit, seeded) and class-oracle codes (one seeded random code per
class: mAP@all 1 by construction). Also printed: the share of the off-diagonal affinity mass that lies on
same-class pairs (the labels never enter training; this says how much class structure ``A`` carries) and each
run's test mAP@all (``--t``: the share at other bandwidths too). Nothing is written into the runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))


def code_objective(codes: torch.Tensor, A: torch.Tensor, a2: float, a3: float, h2_scale: str = "batch"
                   ) -> Dict[str, float]:
    """``{h2, h3, objective}`` of one batch of sign codes ``[N_B, m]`` under the affinity ``A`` ``[N_B, N_B]``,
    each divided by ``N_B``; ``objective = a2 h2 + a3 h3`` (the code-dependent part of eq. 3.15 for sign codes)."""
    from lightning_hash.methods.dvb import decorrelation_loss, similarity_loss

    if not torch.all(codes.abs() == 1):
        raise ValueError("code_objective: codes must be sign codes (every entry +1 or -1)")
    n = codes.shape[0]
    codes = codes.to(torch.float64)
    h2 = float(decorrelation_loss(codes, h2_scale)) / n
    h3 = float(similarity_loss(codes, A.to(torch.float64))) / n
    return {"h2": h2, "h3": h3, "objective": a2 * h2 + a3 * h3}


def same_class_share(A: torch.Tensor, labels: np.ndarray) -> float:
    """Share of the off-diagonal mass of ``A`` on pairs with the same class (``labels``: class indices ``[n]``)."""
    same = torch.as_tensor(labels[:, None] == labels[None, :])
    off = ~torch.eye(len(labels), dtype=torch.bool)
    total = float(A[off].sum())
    if not total > 0:
        raise ValueError("same_class_share: the affinity has no off-diagonal mass")
    return float(A[off & same].sum()) / total


def chance_same_class_share(labels: np.ndarray) -> float:
    """Share of the off-diagonal pairs with the same class, i.e. ``same_class_share`` of a uniform affinity."""
    n = len(labels)
    return float((np.bincount(labels) ** 2).sum() - n) / (n * (n - 1))


def _class_indices(labels: np.ndarray) -> np.ndarray:
    if labels.ndim == 1:
        return labels.astype(np.int64)
    if not np.all(labels.sum(axis=1) == 1):
        raise ValueError("diagnose_dvb_objective.py: needs single-label data (one class per item)")
    return labels.argmax(axis=1)


def diagnose(dvb_run: str, itq_run: str, batches: int = 40, seed: int = 0,
             other_t: Sequence[float] = ()) -> Dict[str, Any]:
    from lightning_hash.encoding import encode_dataset
    from lightning_hash.methods.dvb import batch_affinity
    from retrieve import load_run

    dvb_results, dvb, dm = load_run(dvb_run)
    if dvb_results["method"] != "dvb":
        raise ValueError(f"{dvb_run}: a dvb run is expected, this is {dvb_results['method']!r}")
    itq_results, itq, itq_dm = load_run(itq_run)
    splits = [json.loads(Path(r["split_file"]).read_text()) for r in (dvb_results, itq_results)]
    if splits[0] != splits[1]:
        raise ValueError(f"{dvb_run} and {itq_run} were not run on the same split: their split files "
                         f"{dvb_results['split_file']} and {itq_results['split_file']} differ")
    hp = dvb.hparams
    _, a2, a3 = dvb.weights
    for d in (dm, itq_dm):
        d.setup("fit")
    train = dm.train_dataset
    size = int(dm.batch_size)
    if batches * size > len(train):
        raise ValueError(f"--batches {batches} x batch size {size} exceeds the {len(train)} training items")
    rng = np.random.RandomState(seed)
    positions = rng.choice(len(train), size=batches * size, replace=False)
    subset = torch.utils.data.Subset(train, positions.tolist())
    dvb_codes, rows, labels = encode_dataset(dvb, subset, dvb.image_key)
    itq_codes, itq_rows, _ = encode_dataset(itq, torch.utils.data.Subset(itq_dm.train_dataset, positions.tolist()),
                                            dvb.image_key)
    if not np.array_equal(rows, itq_rows):
        raise ValueError("the two runs' training splits serve different rows at the same positions")
    classes = _class_indices(labels)
    raw = torch.stack([train[int(p)][dvb.image_key].reshape(-1).float() for p in positions])
    bits = dvb_codes.shape[1]
    gen = np.random.RandomState(seed + 1)
    oracle_book = np.where(gen.rand(int(classes.max()) + 1, bits) < 0.5, -1.0, 1.0)
    sets = {"dvb": dvb_codes, "itq": itq_codes,
            "random": np.where(gen.rand(len(positions), bits) < 0.5, -1.0, 1.0),
            "class oracle": oracle_book[classes]}
    scores: Dict[str, List[Dict[str, float]]] = {k: [] for k in sets}
    shares, chance = [], []
    other: Dict[float, List[float]] = {float(t): [] for t in other_t}
    for b in range(batches):
        sl = slice(b * size, (b + 1) * size)
        A = batch_affinity(raw[sl], float(hp.t), hp.t_scale)
        shares.append(same_class_share(A, classes[sl]))
        chance.append(chance_same_class_share(classes[sl]))
        for t in other:
            other[t].append(same_class_share(batch_affinity(raw[sl], t, hp.t_scale), classes[sl]))
        for name, codes in sets.items():
            scores[name].append(code_objective(torch.as_tensor(codes[sl]), A, a2, a3, hp.h2_scale))
    task = next(k for k in dvb_results["metrics"] if k.startswith("test/mAP@all/"))
    mAP = {"dvb": dvb_results["metrics"][task], "itq": itq_results["metrics"].get(task), "random": None,
           "class oracle": 1.0}
    return {"dvb_run": dvb_run, "itq_run": itq_run, "bits": bits, "batches": batches, "batch_size": size,
            "seed": seed, "a2": a2, "a3": a3, "t": float(hp.t), "t_scale": hp.t_scale,
            "same_class_affinity_share": float(np.mean(shares)),
            "same_class_share_at_t": {str(t): float(np.mean(v)) for t, v in other.items()},
            "chance_same_class_share": float(np.mean(chance)),
            "codes": {name: {**{k: float(np.mean([s[k] for s in v])) for k in ("h2", "h3", "objective")},
                             "test_mAP@all": mAP[name]} for name, v in scores.items()}}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dvb_run", help="a dvb run folder")
    p.add_argument("itq_run", help="an itq run folder on the same split")
    p.add_argument("--batches", type=int, default=40, help="training batches to score (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seeds the batches, random and oracle codes")
    p.add_argument("--t", type=float, nargs="+", default=[],
                   help="also report the same-class share of the affinity at these bandwidths (the run's t_scale)")
    p.add_argument("--json", default=None, help="write the figures to this file (not into the runs)")
    args = p.parse_args(argv)
    if args.batches < 1:
        p.error("--batches must be >= 1")
    if any(not t > 0 for t in args.t):
        p.error("--t values must be positive")
    warnings.filterwarnings("ignore")
    out = diagnose(args.dvb_run, args.itq_run, args.batches, args.seed, args.t)
    print(f"{out['bits']} bits, {out['batches']} training batches of {out['batch_size']} (seed {out['seed']}); "
          f"a2 = {out['a2']:g}, a3 = {out['a3']:g}, t = {out['t']:g} ({out['t_scale']}); same-class share of the "
          f"affinity {out['same_class_affinity_share']:.3f} (chance {out['chance_same_class_share']:.3f})")
    for t, share in out["same_class_share_at_t"].items():
        print(f"  same-class share of the affinity at t = {float(t):g}: {share:.3f}")
    print("| codes | test mAP@all | H2 / N_B | H3 / N_B | a2 H2 + a3 H3 |")
    print("|---|---|---|---|---|")
    for name, c in out["codes"].items():
        m = "-" if c["test_mAP@all"] is None else f"{c['test_mAP@all']:.3f}"
        print(f"| {name} | {m} | {c['h2']:.3f} | {c['h3']:.4f} | {c['objective']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Where AgNet loses image->image (IBIR) retrieval of unseen classes: attributes, A2H, or the sign.

    OMP_NUM_THREADS=1 python experiments/diagnose_agnet_ibir.py                 # ~3 minutes on one core
    OMP_NUM_THREADS=1 python experiments/diagnose_agnet_ibir.py --seed 1 --output runs/diagnose_agnet_s1

The data are the setting AgNet is designed for, which none of the offline benchmarks offers: the ``synthetic``
DataModule with 50 classes, 10 of them unseen (so A2H sees 40 seen classes, not 7 or 8), and class attributes
that truly describe the classes (the signs of the class prototypes, 32 binary attributes; the class "text" is the
prototype itself). Items are a linear view of ``prototype + noise``.

Both ``agnet`` and ``agnet_noattr`` are trained through ``run.py`` (same split, seed, code length), then the
IBIR task of the test split (unseen image queries; database = the other unseen images plus every seen image) is
scored with four rankings of the same queries:

* ``codes``: Hamming ranking of the binary codes (what ``run.py`` reports; the library's ``mean_average_precision``);
* ``pre-sign``: cosine ranking of the real-valued network output before ``sign``;
* ``attributes`` (AgNet only): cosine ranking of V2A's predicted attributes, i.e. before A2H;
* and, for AgNet, the Hamming distance from the code of each unseen class's true attribute vector to the nearest
  seen class's code (A2H maps an unseen attribute vector near a seen class's codeword when this is small).

The real-valued rankings use scikit-learn's ``average_precision_score`` (mAP over all database items), an
independent implementation, so the columns are comparable. Everything lands in ``<output>/diagnosis.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

#: the synthetic zero-shot set (see the module docstring) as run.py flags
SYNTHETIC = ["--data", "synthetic", "--set", "data.n_items=10000", "--set", "data.n_classes=50",
             "--set", "data.latent_dim=32", "--set", "data.noise=0.6", "--set", "data.zero_shot=true",
             "--set", "data.n_unseen=10", "--set", "data.database=all", "--set", "data.modalities=[image]",
             "--set", "data.class_queries=prototypes", "--set", "data.class_query_database=class_items",
             "--set", "data.standardize=true", "--set", "method.text_key=prototypes"]
EPOCHS = {"agnet": ["--max-epochs", "20", "--set", "method.stage1_epochs=10"], "agnet_noattr": ["--max-epochs", "20"]}


def cosine_map(query: np.ndarray, query_labels: np.ndarray, db: np.ndarray, db_labels: np.ndarray) -> float:
    """mAP over the whole database of a cosine ranking (scikit-learn's average precision per query); labels are
    class indices ``[n]`` or multi-hot ``[n, C]``, as in the library's metrics."""
    from sklearn.metrics import average_precision_score
    for name, x in (("query", query), ("database", db)):
        if not np.all(np.linalg.norm(x, axis=1) > 0):
            raise ValueError(f"cosine_map: a {name} vector is all zeros; cosine ranking is undefined")
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    d = db / np.linalg.norm(db, axis=1, keepdims=True)
    scores = q @ d.T
    if query_labels.ndim == 1:       # class indices
        relevant = db_labels[None, :] == query_labels[:, None]
    else:                            # multi-hot: relevant when a label is shared
        relevant = (query_labels @ db_labels.T) > 0
    return float(np.mean([average_precision_score(relevant[i], scores[i]) for i in range(len(q))]))


def diagnose(run_folder: Path, method: str) -> Dict[str, object]:
    import torch

    from lightning_hash.codes import sign_codes
    from lightning_hash.metrics import hamming_distance, mean_average_precision
    from lightning_hash.encoding import embed_dataset
    from retrieve import load_run

    _, model, dm = load_run(str(run_folder))
    dm.setup("test")
    (task,) = [t for t in dm.tasks if t.query == "image" and t.database == "image"]
    query_set, db_set = dm.eval_dataset("test", task.query_set), dm.eval_dataset("test", task.database_set)
    rankings = {"pre-sign": lambda m, b: m.encode(b, "image")}
    if method == "agnet":
        rankings["attributes"] = lambda m, b: m.v2a(b["image"])
    out: Dict[str, object] = {}
    for name, fn in rankings.items():
        q, _, ql = embed_dataset(model, query_set, fn, batch_size=1024)
        d, _, dl = embed_dataset(model, db_set, fn, batch_size=1024)
        if name == "pre-sign":     # the codes are the signs of the same outputs
            out["codes"] = float(mean_average_precision(
                sign_codes(torch.from_numpy(q)), sign_codes(torch.from_numpy(d)),
                torch.from_numpy(ql), torch.from_numpy(dl)))
        out[name] = cosine_map(q, ql, d, dl)
    if method == "agnet":
        attributes = dm.class_semantics["attributes"]
        with torch.no_grad():
            unseen = sign_codes(model.a2h(attributes[list(dm.split.unseen_classes)]))
            seen = sign_codes(model.a2h(attributes[list(dm.split.seen_classes)]))
        out["unseen_code_to_nearest_seen_code_hamming"] = hamming_distance(unseen, seen).min(dim=1).values.tolist()
    return out


def main(argv=None) -> Dict[str, Dict[str, object]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--output", default="runs/diagnose_agnet")
    args = p.parse_args(argv)
    from lightning_hash.benchmarking import prepare_benchmark
    from lightning_hash.experiment import main as run_main
    out = prepare_benchmark(args.output)
    report: Dict[str, Dict[str, object]] = {}
    for method in ("agnet", "agnet_noattr"):
        folder = out / method
        run_main(["--method", method, *SYNTHETIC, *EPOCHS[method], "--bits", str(args.bits), "--seed",
                  str(args.seed), "--logger", "none", "--no-progress-bar", "--output", str(folder)])
        report[method] = diagnose(folder, method)
        (out / "diagnosis.json").write_text(json.dumps(report, indent=1))
    print("\n| method | IBIR mAP@all: codes (Hamming) | pre-sign output (cosine) | V2A attributes (cosine) |")
    print("|---|---|---|---|")
    rows: List[str] = []
    for method, r in report.items():
        attr = f"{r['attributes']:.3f}" if "attributes" in r else "-"
        rows.append(f"| {method} | {r['codes']:.3f} | {r['pre-sign']:.3f} | {attr} |")
    print("\n".join(rows))
    print("unseen class code -> nearest seen class code, Hamming:",
          report["agnet"]["unseen_code_to_nearest_seen_code_hamming"], f"(of {args.bits} bits)")
    return report


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Search with a trained hash function: encode a database, index it, answer queries (ids and distances).

    python experiments/retrieve.py RUN [--checkpoint PATH] [--task image->text] [--database database|train]
                                   [--queries 0 1 2 | --n-queries 5] [--k 10] [--radius R] [--save-index FILE]

``RUN`` is a run folder or its ``results.json`` (written by ``run.py``): its configuration and ``split.json``
rebuild the exact DataModule and split, and its best checkpoint (``model_selection.best_checkpoint``; or
``--checkpoint``) the method. The database (default: the test database of the task; ``--database train`` the
training items) is encoded with the task's database-modality encoder, binarised with ``sign_codes`` and put in a
``lightning_hash.index.HammingIndex``; the queries (positions in the task's test query set) are encoded with the
query-modality encoder. For each query it prints the k nearest database items (or all within ``--radius``):
their dataset row ids (the ``index`` the DataModule serves), the Hamming distance, and whether they share a
label with the query. Ties are ordered by database position (ascending), see ``HammingIndex``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lightning_hash.encoding import encode_dataset  # noqa: E402


def load_run(run: str, checkpoint: Optional[str] = None):
    """``(results, model, datamodule)`` of a run folder or its results.json."""
    from lightning_hash import methods
    from lightning_hash.experiment import build_datamodule

    path = Path(run)
    results_file = path / "results.json" if path.is_dir() else path
    if not results_file.is_file():
        raise FileNotFoundError(f"retrieve.py: no results.json at {results_file}")
    results = json.loads(results_file.read_text())
    ckpt = checkpoint or (results.get("model_selection") or {}).get("best_checkpoint")
    if not ckpt or not Path(ckpt).is_file():
        raise FileNotFoundError(f"retrieve.py: checkpoint not found: {ckpt!r}; pass --checkpoint")
    dm = build_datamodule(results["config"], results_file.parent)
    model = methods.get(results["config"]["method_name"]).load_from_checkpoint(ckpt, map_location="cpu")
    return results, model, dm


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder or its results.json")
    p.add_argument("--checkpoint", default=None, help="default: the run's best checkpoint")
    p.add_argument("--task", default=None, help="e.g. image->text (default: the DataModule's first task)")
    p.add_argument("--database", default="database", choices=["database", "train"],
                   help="the task's test database, or the training items")
    p.add_argument("--queries", type=int, nargs="+", default=None, help="positions in the test query set")
    p.add_argument("--n-queries", type=int, default=5, help="the first N queries when --queries is not given")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--radius", type=int, default=None, help="range search within this Hamming radius instead")
    p.add_argument("--save-index", default=None, help="write the index (.npz)")
    args = p.parse_args(argv)

    from lightning_hash.index import HammingIndex

    results, model, dm = load_run(args.run, args.checkpoint)
    tasks = {t.name: t for t in dm.tasks}
    task = tasks[args.task] if args.task else dm.tasks[0]
    if args.task and args.task not in tasks:
        raise SystemExit(f"retrieve.py: unknown task {args.task}; this data has {sorted(tasks)}")
    db_set = dm.train_dataset if args.database == "train" else dm.eval_dataset("test", task.database_set)
    q_set = dm.eval_dataset("test", task.query_set)
    db_codes, db_rows, db_labels = encode_dataset(model, db_set, task.database)
    index = HammingIndex(db_codes.shape[1])
    index.add(db_codes)
    if args.save_index:
        index.save(args.save_index)

    positions = args.queries if args.queries is not None else list(range(min(args.n_queries, len(q_set))))
    if any(i < 0 or i >= len(q_set) for i in positions):
        raise SystemExit(f"retrieve.py: query positions must be in [0, {len(q_set)})")
    q_codes, q_rows, q_labels = encode_dataset(model, torch.utils.data.Subset(q_set, positions), task.query)
    if args.radius is not None:
        answers = index.range_search(q_codes, args.radius)
    else:
        answers = list(zip(*index.search(q_codes, args.k)))

    print(f"{results['method']} on {results['data']}, {index.bits} bits, task {task.name}: "
          f"{len(index)} database items ({args.database}), {len(positions)} queries")
    out: List[Dict[str, Any]] = []
    for qi, (pos, (ids, dist)) in enumerate(zip(positions, answers)):
        relevant = (db_labels[ids] @ q_labels[qi]) > 0
        print(f"query {pos} (row {q_rows[qi]}): " + (f"{len(ids)} within radius {args.radius}" if args.radius
                                                     is not None else f"top {len(ids)}"))
        print("  row ids  : " + " ".join(str(int(r)) for r in db_rows[ids]))
        print("  distances: " + " ".join(str(int(d)) for d in dist))
        print(f"  relevant : {int(relevant.sum())}/{len(ids)}")
        out.append({"query": int(pos), "query_row": int(q_rows[qi]), "rows": db_rows[ids].tolist(),
                    "distances": dist.tolist(), "relevant": relevant.tolist()})
    return {"task": task.name, "bits": index.bits, "database_size": len(index), "answers": out}


if __name__ == "__main__":
    main()

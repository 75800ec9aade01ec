"""Weights & Biases: offline when there is no API key, one run per (method, data, bits, seed), grouped.

The run's config carries ``method``, ``data``, ``bits`` and ``seed`` as top-level keys and the group is
``<method>-<data>-<bits>bits``, so "DJSRH at 16/32/64/128 bits over 3 seeds" is a filter and a group-by on
the dashboard, not a manual job. Offline runs are uploaded later with ``wandb sync <run folder>/wandb/offline-run-*``.
"""
from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence


def wandb_mode() -> str:
    """``WANDB_MODE`` when set; otherwise ``online`` if an API key is configured, else ``offline``.

    No network probe is made (it would hang on machines without network); a configured key on a machine that
    cannot reach the server is the user's call: set ``WANDB_MODE=offline``.
    """
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def run_identity(cfg: Dict[str, Any], label: str) -> Dict[str, str]:
    """W&B name and group of a run whose configuration is labelled ``label`` (its ``--name``)."""
    base = f"{label}-{cfg['data_name']}-{cfg['bits']}bits"
    return {"name": f"{base}-seed{cfg['seed']}", "group": base}


def make_wandb_logger(cfg: Dict[str, Any], output: Path, project: str, label: str, entity: Optional[str] = None,
                      group: Optional[str] = None, tags: Sequence[str] = ()):
    from pytorch_lightning.loggers import WandbLogger

    ident = run_identity(cfg, label)
    mode = wandb_mode()
    all_tags = [cfg["method_name"], label, cfg["data_name"], f"{cfg['bits']}bits", f"seed{cfg['seed']}",
                *tags]
    return WandbLogger(project=project, entity=entity, name=ident["name"], group=group or ident["group"],
                       tags=list(dict.fromkeys(all_tags)), save_dir=str(output), offline=(mode == "offline"),
                       mode=mode, id=_stable_run_id(output), resume="allow", job_type="train")


def _stable_run_id(output: Path) -> str:
    """One W&B run id per run folder, kept in the folder, so ``--resume`` continues the same W&B run."""
    path = output / "wandb_run_id"
    if path.is_file():
        return path.read_text().strip()
    import uuid
    run_id = uuid.uuid4().hex[:12]
    output.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id)
    return run_id


def log_final(logger, results: Dict[str, Any]) -> None:
    """Summary metrics and the two plots people look at (P-R curve, P@K curve), one line per task."""
    import wandb

    run = logger.experiment
    run.summary.update(results["metrics"])
    run.summary.update({"best_val_score": results["model_selection"]["best_score"]})
    # the validation figures of the chosen checkpoint replace the last epoch's in the summary, as the test ones are
    run.summary.update(results["model_selection"].get("val_metrics") or {})
    curves = results.get("curves") or {}
    if not curves:
        return
    tasks = list(curves)
    run.log({
        "test/PR_curve": wandb.plot.line_series(
            xs=[curves[t]["pr_recall"] for t in tasks], ys=[curves[t]["pr_precision"] for t in tasks], keys=tasks,
            title="Precision-recall (Hamming radius 0..bits)", xname="recall"),
        "test/P@K_curve": wandb.plot.line_series(
            xs=[curves[t]["k"] for t in tasks], ys=[curves[t]["precision_at_k"] for t in tasks], keys=tasks,
            title="Precision at K", xname="K"),
    })


def _wandb_records(path: Path):
    """The protobuf payloads of a ``.wandb`` transaction log (LevelDB log format: 32 KiB blocks of records)."""
    import struct

    block = 32768
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B transaction log (missing ':W&B' header)")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:                         # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        if kind == 0 and length == 0:        # zero padding up to the end of the block
            pos += left - 7
            continue
        chunk, pos = data[pos:pos + length], pos + length
        if kind == 1:                        # FULL
            yield chunk
        elif kind == 2:                      # FIRST
            pending = chunk
        elif kind == 3:                      # MIDDLE
            pending += chunk
        elif kind == 4:                      # LAST
            yield pending + chunk
            pending = b""


def read_offline_run(run_dir: Path, timeout: float = 0.0) -> Dict[str, Any]:
    """Config and final summary of an offline run folder (``wandb/offline-run-*``), without the network.

    Used by the tests and by comparison tools that read runs which were never synced. W&B writes the log in a
    background process that may still be busy after ``wandb.finish()`` returns: with ``timeout`` > 0 this
    waits (up to ``timeout`` seconds) for the log's closing ``exit`` record; ``complete`` in the result says
    whether it was seen.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        content = _read_offline_log(Path(run_dir))
        if content["complete"] or time.monotonic() >= deadline:
            return content
        time.sleep(0.25)


def _read_offline_log(run_dir: Path) -> Dict[str, Any]:
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    logs = sorted(Path(run_dir).glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file (is this an offline W&B run folder?)")
    complete = False
    config: Dict[str, Any] = {}
    summary: Dict[str, Any] = {}

    def key_of(item) -> str:
        return item.key or ".".join(item.nested_key)

    for payload in _wandb_records(logs[0]):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):
            updates = record.run.config.update if kind == "run" else record.config.update
            for item in updates:
                config[key_of(item)] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                summary[key_of(item)] = json.loads(item.value_json)
            for item in record.summary.remove:
                summary.pop(key_of(item), None)
        elif kind == "exit":
            complete = True
    config.pop("_wandb", None)
    return {"config": config, "summary": summary, "complete": complete}

"""A run folder is never overwritten or mixed with another run without the user asking for it.

What ``experiments/run.py`` (:mod:`lightning_hash.experiment`) relies on:

* :class:`RunLock`: an exclusive ``flock`` on ``<run>/.lock`` while a run writes. The kernel drops it when the
  process ends, however it ends (``kill -9`` included), so a crashed run never leaves a stale lock; a second run
  into the same folder is refused at once with the holder's pid.
* :func:`check_fresh_folder`: a fresh run (no ``--resume``) into a folder that holds a run's files is refused
  unless the user says ``--overwrite``; :func:`clear_run_files` then removes exactly those files.
* :func:`load_checkpoint_file`: a checkpoint is read once (its epoch count and log step taken from it) before
  anything is rewritten;
  a damaged or truncated file is an error naming it.
* :class:`AtomicCheckpointIO`: checkpoints are written to a temporary file in the destination folder, flushed to
  disk and renamed over the old one (``os.replace`` on one filesystem is atomic). Lightning's default writer
  goes through fsspec, whose local transaction writes to ``$TMPDIR`` and moves the file: across filesystems that
  move is copy-over-truncate, and a kill during it left a 0-byte ``last.ckpt``.
* :class:`AppendingCSVLogger`: Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts; on
  resume this one keeps the rows of the steps before the checkpoint and appends the new ones.
"""
from __future__ import annotations

import csv
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Dict, Optional

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

#: The files and folders a run writes into its folder (what ``--overwrite`` removes, what makes a folder a run's).
RUN_FILES = ("config.yaml", "split.json", "results.json", "checkpoints", "csv", "wandb", "lightning_logs",
             "wandb_run_id")
LOCK_FILE = ".lock"


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (another run holds it, it holds a finished run, ...)."""


# ---------------------------------------------------------------------------------------------- lock
class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<folder>/.lock``, held until :meth:`release` or process exit."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._fh = None

    def acquire(self) -> "RunLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RunFolderError(f"{self.path.parent}: another run is writing to this folder ({holder}); wait for "
                                 "it to finish, or pass another --output") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            import fcntl
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------- fresh runs
def existing_run_files(folder: Path) -> list:
    folder = Path(folder)
    return [name for name in RUN_FILES if (folder / name).exists()]


def check_fresh_folder(folder: Path, overwrite: bool) -> None:
    """Refuse a fresh run into a folder holding a run's files, unless ``overwrite``."""
    found = existing_run_files(folder)
    if found and not overwrite:
        raise RunFolderError(
            f"{folder} already holds a run ({', '.join(found)}); a fresh run would overwrite or mix with it. "
            "Continue it with --resume last, pass another --output, or --overwrite to replace it")


def clear_run_files(folder: Path) -> None:
    """Remove what a run wrote into ``folder`` (``--overwrite``); other files are left alone."""
    for name in existing_run_files(folder):
        path = Path(folder) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


# ---------------------------------------------------------------------------------------------- checkpoints
def load_checkpoint_file(path: Path) -> Dict[str, Any]:
    """``torch.load`` of a Lightning checkpoint, or an error naming the file when it is damaged or not one."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the checkpoint is empty (0 bytes): it was cut off while being written; resume "
                         "from another checkpoint in its folder, or start the run again with --overwrite")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # noqa: BLE001 - zip reader, EOF, unpickling: all mean the file is damaged
        raise ValueError(f"{path}: cannot read the checkpoint, it is damaged or truncated ({type(err).__name__}: "
                         f"{err}); resume from another checkpoint in its folder, or start the run again with "
                         "--overwrite") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "epoch" not in ckpt:
        raise ValueError(f"{path}: not a Lightning checkpoint (expected a dict with 'state_dict' and 'epoch')")
    return ckpt


def checkpoint_epochs(ckpt: Dict[str, Any]) -> int:
    """The number of training epochs a loaded checkpoint has completed (its saved epoch index + 1)."""
    return int(ckpt["epoch"]) + 1


def checkpoint_logged_step(ckpt: Dict[str, Any]) -> Optional[int]:
    """The logger step counter saved in a loaded checkpoint (the CSV ``step`` of the next row), if it holds one."""
    try:
        return int(ckpt["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"])
    except (KeyError, TypeError):
        return None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, written atomically in the destination folder (see the module docstring)."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, Path(path))


# ---------------------------------------------------------------------------------------------- CSV logs
class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV experiment writer without the deletion of an existing ``metrics.csv``."""

    def _check_log_dir_exists(self) -> None:  # Lightning deletes metrics.csv here: keep it
        pass

    def keep_rows(self, before_step: Optional[float]) -> None:
        """Keep the rows with ``step < before_step`` (``None``: none, a fresh file; ``inf``: all of them)."""
        if not os.path.isfile(self.metrics_file_path):
            return
        if before_step is None:
            os.remove(self.metrics_file_path)
            return
        with open(self.metrics_file_path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") not in (None, "") and int(float(r["step"])) < before_step]
        tmp = self.metrics_file_path + ".tmp"
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.metrics_file_path)
        self.metrics_keys = header   # appended rows use the file's columns (new keys rewrite the header)


class AppendingCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger`` whose ``metrics.csv`` survives a resume.

    ``keep_before_step``: on resume, the rows with ``step`` below it (the steps the checkpoint holds) are kept
    and the new rows appended; rows of steps after the checkpoint (run again after the resume) are dropped;
    ``inf`` keeps every row (a checkpoint that does not say its step). ``None``: a fresh run, a new file.
    """

    def __init__(self, save_dir: str, name: str, keep_before_step: Optional[float] = None) -> None:
        super().__init__(save_dir=save_dir, name=name, version="")
        self._keep_before_step = keep_before_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            writer = _AppendingWriter(log_dir=self.log_dir)
            writer.keep_rows(self._keep_before_step)
            self._experiment = writer
        return self._experiment

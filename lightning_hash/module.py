"""The base LightningModule of every hashing method and the one evaluation loop they all share.

A method subclasses :class:`HashingModule`, builds one encoder per modality in ``__init__`` (hyperparameters
are constructor arguments, saved with ``save_hyperparameters()`` so a checkpoint alone rebuilds it),
implements :meth:`HashingModule.encode` and ``training_step``. Everything about evaluation lives here:

* for every retrieval task the DataModule declares (query modality, database modality, and the evaluation
  sets that serve each side), the query set is encoded with the query modality's encoder and the database set
  with the database modality's encoder, binarised with :func:`~lightning_hash.codes.sign_codes`, and fed to the
  metrics package together with the items' dataset indices (so results do not depend on DDP sharding);
* metrics are logged as ``{split}/{metric}/{query}->{database}`` (``mAP@all``, ``mAP@K``, ``P@K``, ``P@r2``,
  ``R@r2``), plus ``{split}/{metric}/mean`` over tasks, which is what checkpoint selection monitors on the
  ``val`` split (never on the test queries);
* at test time the P-R curve (radius 0..bits) and the P@K curve are kept in ``self.test_curves``.

Under DDP every process encodes a contiguous, unpadded shard of each evaluation set; the torchmetrics states
are concatenated across processes on ``compute()``, so every process logs the same, exact figure and
``sync_dist`` is not needed (nor correct: averaging mAPs of shards is not the mAP of the whole).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from lightning_hash.codes import sign_codes
from lightning_hash.metrics import DEFAULT_TIE_BREAK, HammingRetrievalMetrics

#: The P@K curve is evaluated at these ranks.
P_AT_K_CURVE = (1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class HashingModule(pl.LightningModule):
    """Base class: per-modality encoders behind :meth:`encode`, and the shared retrieval evaluation.

    Parameters
    ----------
    bits: code length.
    eval_map_at: rank cut-offs K of the ``mAP@K`` figures (the paper's K, e.g. DJSRH's 50).
    eval_precision_at: ranks K of the ``P@K`` figures.
    eval_recall_at: ranks K of the ``R@K`` figures (none by default; the test curves hold R@K at every
        :data:`P_AT_K_CURVE` rank).
    eval_radius: Hamming radius of ``P@r{radius}`` / ``R@r{radius}``.
    tie_break: how items at equal Hamming distance are ordered, see
        :func:`lightning_hash.metrics.functional.mean_average_precision`.
    select_metric: the metric whose mean over tasks on the ``val`` split selects checkpoints.
    """

    #: False for methods fitted in closed form (no SGD); ``run.py`` then calls :meth:`fit_once` instead of fit.
    requires_training: bool = True
    #: False for single-modal methods: their codes of different modalities are not comparable, so they serve
    #: ``m->m`` tasks only (:meth:`check_tasks` refuses the others).
    cross_modal: bool = True

    def __init__(self, bits: int, eval_map_at: Sequence[int] = (50,), eval_precision_at: Sequence[int] = (100,),
                 eval_radius: int = 2, tie_break: str = DEFAULT_TIE_BREAK, select_metric: str = "mAP@all",
                 eval_recall_at: Sequence[int] = ()) -> None:
        super().__init__()
        if int(bits) <= 0:
            raise ValueError(f"bits must be a positive integer, got {bits}")
        if any(int(k) <= 0 for k in list(eval_map_at) + list(eval_precision_at) + list(eval_recall_at)):
            raise ValueError("eval_map_at / eval_precision_at / eval_recall_at must hold positive ranks, "
                             f"got {list(eval_map_at)} / {list(eval_precision_at)} / {list(eval_recall_at)}")
        self.bits = int(bits)
        self.eval_map_at = [int(k) for k in eval_map_at]
        self.eval_precision_at = [int(k) for k in eval_precision_at]
        self.eval_recall_at = [int(k) for k in eval_recall_at]
        self.eval_radius = int(eval_radius)
        self.tie_break = tie_break
        self.select_metric = select_metric
        self._metrics = nn.ModuleDict()          # task name -> HammingRetrievalMetrics, built per stage
        self._eval_tasks: List[Any] = []
        self._eval_sets: List[str] = []
        self.test_curves: Dict[str, Dict[str, List[float]]] = {}
        #: the modality :meth:`predict_step` encodes (``Trainer.predict``, :func:`lightning_hash.encoding.encode_dataset`)
        self.predict_modality: Optional[str] = None
        #: per ``<evaluation set>/<modality>`` of the last test: items, distinct codes, classes (code collapse)
        self.test_code_stats: Dict[str, Dict[str, int]] = {}
        self._code_parts: Dict[str, List[torch.Tensor]] = {}
        self._label_parts: Dict[str, List[torch.Tensor]] = {}
        self._count_codes = False

    # ------------------------------------------------------------------ the method's contract
    def encode(self, batch: Dict[str, torch.Tensor], modality: str) -> torch.Tensor:
        """Real-valued codes ``[B, bits]`` for ``batch[modality]``; their sign gives the bits."""
        raise NotImplementedError

    def fit_once(self, datamodule) -> None:  # pragma: no cover - overridden by closed-form methods
        """Closed-form fitting on the training split (methods with ``requires_training = False``)."""
        raise NotImplementedError

    def check_tasks(self, tasks: Sequence[Any]) -> None:
        """Refuse retrieval tasks this method cannot serve (``run.py`` calls it before training; evaluation too).

        A single-modal method (``cross_modal = False``) fits independent codes per modality, so a cross-modal
        task would score at chance level: a meaningless figure, refused with what to set instead. A task with a
        modality the method does not encode (:meth:`encodable_modalities`, e.g. class word vectors for a
        variant without semantics) is refused here too, rather than failing at the first validation.
        """
        name = getattr(self, "method_name", type(self).__name__.lower())
        allowed = self.encodable_modalities()
        if allowed is not None:
            foreign = [t.name for t in tasks if t.query not in allowed or t.database not in allowed]
            if foreign:
                raise ValueError(f"{name} encodes only {list(allowed)}: it cannot serve the task(s) {foreign}. Leave "
                                 "them out (class-vector queries: --set data.class_queries=null; or name the tasks "
                                 "with --set \"data.tasks=[...]\")")
        if self.cross_modal:
            return
        crossing = [t.name for t in tasks if t.query != t.database]
        if crossing:
            first = tasks[0].query if tasks else "image"
            raise ValueError(
                f"{name} is single-modal: it cannot serve the cross-modal task(s) {crossing} (its codes of two "
                f"modalities are unrelated, so they would score at chance). Serve one modality, e.g. "
                f"--set \"data.modalities=[{first}]\" (or --set \"data.tasks=[{first}->{first}]\"), or use a "
                "cross-modal method (cca_itq, cvh, cmfh, djsrh)")

    def encodable_modalities(self) -> Optional[Sequence[str]]:
        """The modalities :meth:`encode` serves, when a method knows them before setup (``None``: any)."""
        return None

    # ------------------------------------------------------------------ helpers for subclasses
    @property
    def epoch_from_one(self) -> int:
        """The current epoch counted from 1 (epoch schedules such as DJSRH's alpha = sqrt(epoch)).

        Read from the trainer, so a resumed run continues the schedule where it stopped.
        """
        trainer = self._trainer
        return (trainer.current_epoch if trainer is not None else 0) + 1

    def _log_details_now(self) -> bool:
        """True on exactly the steps whose logged values the logger writes (every ``log_every_n_steps``).

        Lightning's ``self.log`` costs about 1.6 ms per call on CPU, which for small models is a large share of
        a step (DJSRH on Wiki: 1.50x the time of a bare PyTorch loop with 5 calls per step, 1.1x without), and
        the logger only writes every ``log_every_n_steps`` steps anyway; methods log training values on these
        steps only. The decision is Lightning's own (``should_update_logs`` of its logger connector, which its
        LearningRateMonitor and DeviceStatsMonitor read too): Lightning writes when ``(batches stepped + 1) % n
        == 0`` or the run is stopping, so a rule of our own (``global_step % n == 0`` was one) can miss every
        written step. ``tests/experiments/test_logging.py`` checks the CSV rows of every trained method.
        """
        trainer = self._trainer
        if trainer is None:
            return True
        connector = getattr(trainer, "_logger_connector", None)
        if connector is None or not hasattr(type(connector), "should_update_logs"):
            raise RuntimeError("this Lightning release has no logger-connector should_update_logs; "
                               "lightning_hash._log_details_now needs updating for it")
        return bool(connector.should_update_logs)

    # ------------------------------------------------------------------ evaluation
    def _task_metrics(self, curves: bool = False, database_size: Optional[int] = None) -> HammingRetrievalMetrics:
        """One metric object per task: every figure from one copy of the codes and (tie-aware) one pass. The
        P@K / R@K curve stops at the database size (a rank beyond it ranks nothing)."""
        curve_at = [k for k in P_AT_K_CURVE if database_size is None or k <= database_size] if curves else []
        return HammingRetrievalMetrics(map_at=self.eval_map_at, precision_at=self.eval_precision_at,
                                       recall_at=self.eval_recall_at, radius=self.eval_radius, pr_curve=curves,
                                       curve_at=curve_at, tie_break=self.tie_break)

    def _start_eval(self, stage: str) -> None:
        dm = self.trainer.datamodule
        if dm is None:
            raise RuntimeError(f"{type(self).__name__}: evaluation needs a RetrievalDataModule passed to the trainer")
        self._eval_sets = list(dm.eval_set_names(stage))
        self._eval_tasks = list(dm.tasks)
        self.check_tasks(self._eval_tasks)
        for task in self._eval_tasks:
            for set_name in (task.query_set, task.database_set):
                if set_name not in self._eval_sets:
                    raise ValueError(f"task {task.name} needs evaluation set '{set_name}', but the datamodule serves "
                                     f"{self._eval_sets} for stage '{stage}'")
        self._metrics = nn.ModuleDict({
            self._task_key(t): self._task_metrics(curves=(stage == "test"),
                                                  database_size=len(dm.eval_rows(stage, t.database_set)))
            for t in self._eval_tasks
        }).to(self.device)
        self._code_parts, self._label_parts = {}, {}
        self._count_codes = stage == "test"   # the distinct-code count is a test figure (results.json)

    @staticmethod
    def _task_key(task) -> str:  # ModuleDict keys may not contain '.'; '->' is fine
        return task.name.replace(".", "_")

    def _eval_step(self, batch: Dict[str, torch.Tensor], dataloader_idx: int) -> None:
        set_name = self._eval_sets[dataloader_idx]
        cache: Dict[str, torch.Tensor] = {}

        def codes(modality: str) -> torch.Tensor:
            if modality not in cache:
                cache[modality] = sign_codes(self.encode(batch, modality).detach())
                if self._count_codes:   # kept for the distinct-code count (code collapse)
                    key = f"{set_name}/{modality}"
                    self._code_parts.setdefault(key, []).append(cache[modality] > 0)
                    self._label_parts.setdefault(key, []).append(batch["label"].reshape(len(batch["label"]), -1) > 0)
            return cache[modality]

        for task in self._eval_tasks:
            metrics = self._metrics[self._task_key(task)]
            if task.query_set == set_name:
                metrics.update(codes(task.query), batch["label"], "query", indexes=batch["index"])
            if task.database_set == set_name:
                metrics.update(codes(task.database), batch["label"], "database", indexes=batch["index"])

    def _end_eval(self, stage: str) -> Dict[str, float]:
        logged: Dict[str, float] = {}
        per_metric: Dict[str, List[float]] = {}
        for task in self._eval_tasks:
            results = self._metrics[self._task_key(task)].compute()
            scalars = self._scalar_results(results)
            for name, value in scalars.items():
                key = f"{stage}/{name}/{task.name}"
                logged[key] = value
                per_metric.setdefault(name, []).append(value)
            if stage == "test":
                self.test_curves[task.name] = self._curves(results)
        if stage == "test":
            self.test_code_stats = self._code_stats()
        for name, values in per_metric.items():
            logged[f"{stage}/{name}/mean"] = sum(values) / len(values)
        for key, value in logged.items():
            # Every process holds the same, already gathered value: no reduction across processes.
            self.log(key, value, prog_bar=key.startswith("val/mAP@all"), sync_dist=False, rank_zero_only=False)
        for metrics in self._metrics.values():
            metrics.reset()
        return logged

    def _gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The rows of every process (DDP), concatenated; this process's rows alone with one process."""
        trainer = self._trainer
        if trainer is None or trainer.world_size <= 1:
            return rows
        sizes = self.all_gather(torch.tensor([rows.shape[0]], device=self.device)).reshape(-1)
        padded = rows.new_zeros((int(sizes.max()),) + tuple(rows.shape[1:]))
        padded[:rows.shape[0]] = rows
        gathered = self.all_gather(padded)
        return torch.cat([gathered[i, :int(n)] for i, n in enumerate(sizes)])

    def _code_stats(self) -> Dict[str, Dict[str, int]]:
        """Per evaluation set and modality: items, distinct codes and classes present; warns on collapse.

        Collapsed codes (far fewer distinct codes than classes, e.g. one code for every image) still give
        plausible-looking figures (``R@r2`` of 1.0, a chance-level mAP); the count is recorded beside them.
        """
        stats: Dict[str, Dict[str, int]] = {}
        for key in sorted(self._code_parts):
            codes = torch.cat(self._code_parts[key]).to(torch.uint8)
            unique = self._gather_rows(torch.unique(codes, dim=0))
            labels = self._gather_rows(torch.cat(self._label_parts[key]).any(0, keepdim=True).to(torch.uint8))
            items = self._gather_rows(torch.tensor([[codes.shape[0]]], device=codes.device))
            stats[key] = {"items": int(items.sum()), "distinct_codes": int(torch.unique(unique, dim=0).shape[0]),
                          "classes": int(labels.any(0).sum())}
        for key, st in stats.items():
            if st["items"] > 1 and (st["distinct_codes"] == 1 or 2 * st["distinct_codes"] <= st["classes"]):
                from pytorch_lightning.utilities import rank_zero_warn
                rank_zero_warn(f"{type(self).__name__}: the codes of '{key}' have collapsed: {st['distinct_codes']} "
                               f"distinct code(s) for {st['items']} items of {st['classes']} classes; the figures "
                               "measure a degenerate encoder (results.json 'code_stats' records the counts)")
        self._code_parts, self._label_parts = {}, {}
        return stats

    @staticmethod
    def _scalar_results(results: Dict[str, Any]) -> Dict[str, float]:
        """The scalar figures of one task (the curves are kept apart)."""
        return {name: float(value) for name, value in results.items() if name not in ("pr_curve", "rank_curve")}

    @staticmethod
    def _curves(results: Dict[str, Any]) -> Dict[str, List[float]]:
        precision, recall = results["pr_curve"]
        ks, p_at_k, r_at_k = results["rank_curve"]
        return {"pr_precision": [float(p) for p in precision], "pr_recall": [float(r) for r in recall],
                "radius": list(range(len(precision))),
                "k": list(ks), "precision_at_k": [float(v) for v in p_at_k], "recall_at_k": [float(v) for v in r_at_k]}

    def predict_step(self, batch: Dict[str, torch.Tensor], batch_idx: int = 0, dataloader_idx: int = 0):
        """``{"codes": {-1, +1} [B, bits], "index": [B], "label": [B, C]}`` of a batch encoded as
        :attr:`predict_modality` (set it first, e.g. ``model.predict_modality = "image"``)."""
        if self.predict_modality is None:
            raise ValueError(f"{type(self).__name__}.predict_step: set predict_modality (the modality to encode) "
                             "first, e.g. model.predict_modality = 'image'")
        codes = sign_codes(self.encode(batch, self.predict_modality).detach())
        return {"codes": codes, "index": batch["index"], "label": batch["label"]}

    def on_validation_epoch_start(self) -> None:
        self._start_eval("val")

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")

    def on_test_epoch_start(self) -> None:
        self._start_eval("test")
        self.test_curves = {}

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")

"""What ``python experiments/run.py`` does: wire data, method, trainer, loggers; train; test; write results.

The order of configuration, later entries winning:

1. the method's constructor defaults (``lightning_hash/methods/<name>.py``),
2. ``lightning_hash/configs/<method>.yaml`` (package data): sections ``method:`` (constructor arguments), ``data:`` (DataModule
   arguments) and ``trainer:``, then ``datasets: {<data name>: {method:, data:, trainer:}}`` for the
   per-dataset settings of the paper,
3. ``--config FILE`` (same layout), then the command-line flags and ``--set section.key=value``.

A run lives in one folder (``--output``): ``config.yaml`` (the resolved configuration), ``split.json`` (the
split, drawn once with the seed and re-read afterwards), ``checkpoints/`` (``last.ckpt`` and the best on the
``val`` split), the logger's files and ``results.json``. ``--resume last`` re-reads that folder's
``config.yaml`` and ``split.json`` and continues from ``checkpoints/last.ckpt``.

Grids: ``--method``, ``--bits`` and ``--seed``/``--seeds`` each take one or more values; ``main`` runs every
(method, bits, seed) combination in turn as an ordinary single run (one folder, one ``results.json``, one W&B
run each; W&B groups them by ``<method>-<data>-<bits>bits``). With a grid, ``--output`` is a root and each run
goes to ``<output>/<method>/<data>/<bits>bits/seed<seed>`` (the default root is ``runs``). ``--sweep FILE``
reads the same flags from YAML (``{flag: value or [values]}``, e.g. ``experiments/sweeps/wiki.yaml``); flags on
the command line win. ``--resume`` continues one run, so it is an error with a grid.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

#: Where the per-method configs live: package data (``lightning_hash/configs``), so an installed wheel has them.
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: The papers' reported figures (``experiments/compare.py --paper``, the benchmarks), package data too.
PAPER_FIGURES = Path(__file__).resolve().parent / "paper_figures.yaml"


def paper_figures(path: Optional[Path] = None) -> Dict[tuple, float]:
    """``{(method, data, metric, task, bits): value}`` from the one file of published figures
    (:data:`PAPER_FIGURES`, or ``path`` in the same layout)."""
    path = Path(path) if path is not None else PAPER_FIGURES
    if not path.is_file():
        raise FileNotFoundError(f"paper figures file not found: {path}")
    content = load_yaml(path.read_text()) or {}
    out: Dict[tuple, float] = {}
    for method, per_data in (content.get("figures") or {}).items():
        for data, per_metric in per_data.items():
            for metric, per_task in per_metric.items():
                for task, per_bits in per_task.items():
                    for bits, value in per_bits.items():
                        out[(method, data, metric, task, int(bits))] = float(value)
    return out

RESULTS_FILE = "results.json"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"
#: ``checkpoints/<LAST_CHECKPOINT>.ckpt`` is rewritten after every epoch; ``--resume last`` continues from it
LAST_CHECKPOINT = "last"
#: The flags a resume may change (every other flag must agree with the saved run's config.yaml).
RESUME_MAY_CHANGE = ("--max-epochs (to train longer)", "--devices", "--num-nodes", "--accelerator", "--strategy",
                     "--logger", "--wandb-*", "--no-progress-bar", "--output")


# ---------------------------------------------------------------------------------------------- YAML
class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's float rule: ``1e-3`` and ``3E+2`` are floats.

    PyYAML follows YAML 1.1, where an exponent needs a dot (``1.0e-3``): ``--set method.lr=3e-2`` or ``lr: 1e-3``
    in a config would otherwise reach the optimiser as the string ``'3e-2'``.
    """


_SafeLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml(stream) -> Any:
    """``yaml.safe_load`` with ``1e-3`` read as a float (see :class:`_SafeLoader`); the one YAML reader of the
    configs, sweeps and ``--set`` values."""
    return yaml.load(stream, Loader=_SafeLoader)


# ---------------------------------------------------------------------------------------------- arguments
def _positive_int(flag: str):
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects a positive integer, got '{value}'") from None
        if n <= 0:
            raise argparse.ArgumentTypeError(f"{flag} expects a positive integer, got {n}")
        return n
    return parse


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def _run_name(value: str) -> str:
    """``--name``: one folder name (letters, digits, ``_ . + -``; no separators, no leading dot)."""
    if not RUN_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(f"--name expects letters, digits and _ . + - (one folder name, starting "
                                         f"with a letter or digit), got '{value}'")
    return value


def _prog() -> str:
    """``run.py`` or ``lightning-hash``: the name the user typed, for --help and error messages."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name in ("run.py", "lightning-hash") else "run.py"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=_prog(), description="Train and evaluate a hashing method on a retrieval benchmark.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--method", nargs="+", default=None, help="method name(s); several run as a grid")
    p.add_argument("--name", default=None, type=_run_name,
                   help="label of this configuration (default: the method name): the run folder "
                        "runs/<name>/..., results.json 'name', the row of comparison tables and the W&B group; "
                        "for a variant of a method, e.g. --method vsb2net --name vsb2net-rec --set method.mu_rec=0")
    p.add_argument("--data", default="digits", help="dataset name or path to a .npz/.h5 bundle")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files (default: per dataset)")
    p.add_argument("--bits", type=_positive_int("--bits"), nargs="+", default=None,
                   help="code length(s) (default: config); several run as a grid")
    p.add_argument("--max-epochs", type=_positive_int("--max-epochs"), default=None)
    p.add_argument("--batch-size", type=_positive_int("--batch-size"), default=None)
    p.add_argument("--seed", "--seeds", dest="seed", type=int, nargs="+", default=[0],
                   help="seed(s): each draws the split, the initialisation and the shuffling; several run as a grid")
    p.add_argument("--output", default=None, help="run folder (default: runs/<method>/<data>/<bits>bits/seed<seed>); "
                                                  "with a grid, the root of the run folders")
    p.add_argument("--sweep", default=None, help="YAML of flags ({flag: value or [values]}) to run as a grid; "
                                                 "command-line flags win")
    p.add_argument("--resume", default=None, help="'last' (the run folder's last checkpoint) or a checkpoint path; "
                                                  f"only {', '.join(RESUME_MAY_CHANGE)} may change on resume")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --output (a fresh run into a run's folder is refused otherwise)")
    p.add_argument("--devices", default="1", help="number of devices (processes) or 'auto'")
    p.add_argument("--num-nodes", type=_positive_int("--num-nodes"), default=1)
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "cuda", "mps", "auto"])
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp, ddp_spawn, fsdp")
    p.add_argument("--precision", default=None, help="Lightning precision, e.g. 32-true, 16-mixed, bf16-mixed")
    p.add_argument("--logger", default="wandb", choices=["wandb", "csv", "none"])
    p.add_argument("--wandb-project", default="lightning-hash")
    p.add_argument("--wandb-entity", default=None)
    p.add_argument("--wandb-group", default=None, help="default: <method>-<data>-<bits>bits")
    p.add_argument("--wandb-tags", nargs="*", default=[])
    p.add_argument("--config", default=None, help="extra YAML with method:/data:/trainer: sections")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set method.beta=0.3 --set data.val_size=200 "
                        "(VALUE is parsed as YAML)")
    p.add_argument("--no-progress-bar", action="store_true", help="disable the progress bar")
    p.add_argument("--allow-degenerate", action="store_true",
                   help="run even when an evaluation set cannot support a figure (a rank cut-off beyond the "
                        "database); each such figure is warned about and listed in results.json 'warnings'")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved, validated configuration (what config.yaml would hold) and exit")
    return p


def explicit_flags(argv: Sequence[str]) -> set:
    """The destinations of the flags actually given in ``argv`` (not filled from a default)."""
    parser = build_parser()
    for action in parser._actions:   # argparse's documented SUPPRESS default: absent flags leave no attribute
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(list(argv))))


# ---------------------------------------------------------------------------------------------- configuration
def _deep_update(base: Dict[str, Any], extra: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def _read_yaml(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path) as fh:
        content = load_yaml(fh) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping with sections method:/data:/trainer:, got {type(content).__name__}")
    unknown = set(content) - {"method", "data", "trainer", "datasets"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}; expected method, data, trainer, datasets")
    return content


def _parse_overrides(overrides: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in ("method", "data", "trainer") or not name:
            raise ValueError(f"--set expects SECTION.KEY=VALUE with SECTION one of method, data, trainer; got '{item}'")
        out.setdefault(section, {})[name] = load_yaml(value)
    return out


def resolve_config(args: argparse.Namespace, config_dir: Path = DEFAULT_CONFIG_DIR) -> Dict[str, Any]:
    """The full configuration of a fresh run (method/data/trainer sections plus the run identity)."""
    from lightning_hash import methods

    methods.get(args.method)            # unknown method: ValueError listing the valid names
    data_name = dataset_name(args.data)   # unknown dataset: ValueError listing the valid names
    cfg: Dict[str, Any] = {"method": {}, "data": {}, "trainer": {}}
    if not Path(config_dir).is_dir():   # never a silent fall-back to constructor defaults
        raise FileNotFoundError(f"config folder not found: {config_dir} (it holds <method>.yaml with the paper's "
                                "settings and ships inside the package as lightning_hash/configs; reinstall the "
                                "package, or pass the folder that holds them)")
    method_file = Path(config_dir) / f"{args.method}.yaml"
    files = ([method_file] if method_file.is_file() else []) + ([Path(args.config)] if args.config else [])
    for path in files:
        content = _read_yaml(path)
        _deep_update(cfg, {k: content.get(k) or {} for k in ("method", "data", "trainer")})
        _deep_update(cfg, (content.get("datasets") or {}).get(data_name))
    if args.bits is not None:
        cfg["method"]["bits"] = args.bits
    if args.max_epochs is not None:
        cfg["trainer"]["max_epochs"] = args.max_epochs
    if args.batch_size is not None:
        cfg["data"]["batch_size"] = args.batch_size
    if args.data_root is not None:
        cfg["data"]["root"] = args.data_root
    _deep_update(cfg, _parse_overrides(args.overrides))
    check_sections(cfg, args.method, data_name)   # unknown keys and wrong types: one line each, nothing built yet
    bits = cfg["method"].setdefault("bits", _constructor_default(args.method, "bits"))
    if not isinstance(bits, int) or bits <= 0:
        raise ValueError(f"--bits must be a positive integer, got {bits!r}")
    if "seed" in _constructor_params(args.method):   # methods that draw random numbers of their own
        cfg["method"]["seed"] = args.seed
    cfg["trainer"].setdefault("max_epochs", 50)
    cfg.update(method_name=args.method, name=getattr(args, "name", None) or args.method, data_name=data_name,
               data_arg=args.data, bits=bits, seed=args.seed)
    return cfg


#: Trainer arguments run.py sets itself, with the flag that sets them.
TRAINER_RESERVED = {"accelerator": "--accelerator", "devices": "--devices", "num_nodes": "--num-nodes",
                    "strategy": "--strategy", "precision": "--precision", "logger": "--logger",
                    "callbacks": "the callbacks argument of main()", "default_root_dir": "--output",
                    "plugins": "nothing (checkpoints are written atomically)",
                    "deterministic": "nothing (runs are deterministic)",
                    "use_distributed_sampler": "nothing (the DataModules shard the data)",
                    "enable_progress_bar": "--no-progress-bar"}
DATA_RESERVED = {"seed": "--seed", "split_file": "--output (the split is the run folder's split.json)"}
METHOD_RESERVED = {"seed": "--seed"}


def check_sections(cfg: Dict[str, Any], method: str, data_name: str) -> None:
    """Validate the ``method:``, ``data:`` and ``trainer:`` sections against the constructor signatures of the
    method, the DataModule (plus the split protocols' arguments) and ``pytorch_lightning.Trainer``
    (:func:`lightning_hash.config.check_section`)."""
    import pytorch_lightning as pl

    import datamodules
    from datamodules.protocols import PROTOCOLS, protocol_arguments
    from lightning_hash import methods
    from lightning_hash.config import check_section, signature_parameters

    check_section("method", cfg["method"], signature_parameters(methods.get(method)), method,
                  reserved=METHOD_RESERVED)
    dm_cls = datamodules.get(data_name)
    protocol_keys = sorted({a for p in PROTOCOLS for a in protocol_arguments(p)})
    check_section("data", cfg["data"], signature_parameters(dm_cls), f"{dm_cls.__name__} ('{data_name}')",
                  extra_keys=protocol_keys, reserved=DATA_RESERVED)
    check_section("trainer", cfg["trainer"], signature_parameters(pl.Trainer), "pytorch_lightning.Trainer",
                  reserved=TRAINER_RESERVED)


def dataset_name(data: str) -> str:
    """The registry name for ``--data``: a registered name, or ``bundle`` for a path to a .npz/.h5 file."""
    import datamodules
    if data in datamodules.available():
        return data
    if Path(data).suffix in (".npz", ".h5", ".hdf5"):
        if not Path(data).is_file():
            raise FileNotFoundError(f"--data: bundle file not found: {data}")
        return "bundle"
    raise ValueError(f"--data: unknown dataset '{data}'; valid names: {', '.join(datamodules.available())}, "
                     "or a path to a .npz/.h5 bundle")


def _constructor_params(method: str) -> Dict[str, Any]:
    import inspect
    from lightning_hash import methods
    return dict(inspect.signature(methods.get(method).__init__).parameters)


def _constructor_default(method: str, name: str) -> Any:
    param = _constructor_params(method).get(name)
    return None if param is None or param.default is param.empty else param.default


# ---------------------------------------------------------------------------------------------- validation
def check_devices(args: argparse.Namespace) -> None:
    """Fail early, with the flag's name, on device requests this machine cannot serve."""
    import torch
    if args.devices == "auto":
        return
    try:
        n = int(args.devices)
    except ValueError:
        raise ValueError(f"--devices expects a positive integer or 'auto', got '{args.devices}'") from None
    if n <= 0:
        raise ValueError(f"--devices expects a positive integer or 'auto', got {n}")
    on_gpu = args.accelerator in ("gpu", "cuda") or (args.accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        available = torch.cuda.device_count()
        if n > available:
            raise ValueError(f"--devices {n} asks for {n} GPUs but {available} are visible on this machine")
    elif args.accelerator in ("cpu", "auto"):
        cores = os.cpu_count() or 1
        if n > cores:
            raise ValueError(f"--devices {n} asks for {n} CPU processes but this machine has {cores} CPU cores; "
                             f"use --devices {cores} or fewer")
    if n > 1 and args.strategy in ("auto", None):
        args.strategy = "ddp"


def run_label(cfg: Dict[str, Any]) -> str:
    """The run's ``--name`` (its method for a configuration saved before ``--name`` existed)."""
    return cfg.get("name") or cfg["method_name"]


def default_output(cfg: Dict[str, Any], root: str = "runs") -> Path:
    return Path(root) / run_label(cfg) / cfg["data_name"] / f"{cfg['bits']}bits" / f"seed{cfg['seed']}"


def resolve_resume(resume: Optional[str], output: Path) -> Optional[str]:
    if resume is None:
        return None
    if resume == "last":
        path = output / "checkpoints" / f"{LAST_CHECKPOINT}.ckpt"
        if not path.is_file():
            raise FileNotFoundError(f"--resume last: no checkpoint at {path}; start the run without --resume, or "
                                    "pass --output with the folder of the run to continue")
        return str(path)
    if not Path(resume).is_file():
        raise FileNotFoundError(f"--resume: checkpoint file not found: {resume}")
    return resume


# ---------------------------------------------------------------------------------------------- building blocks
def build_datamodule(cfg: Dict[str, Any], output: Path):
    import datamodules
    dm = datamodules.create(cfg["data_arg"], seed=cfg["seed"], split_file=str(output / SPLIT_FILE), **cfg["data"])
    dm.prepare_data()
    dm.setup("fit")
    return dm


def build_method(cfg: Dict[str, Any], dm):
    """The method with dataset-dependent arguments (``<modality>_dim``) filled from the DataModule."""
    from lightning_hash import methods
    params = _constructor_params(cfg["method_name"])
    hparams = dict(cfg["method"])
    for modality, dim in dm.input_dims.items():
        key = f"{modality}_dim"
        if key in params and hparams.get(key) is None and isinstance(dim, int):
            hparams[key] = dim
    for key, value in (("num_classes", dm.num_classes),):
        if key in params and hparams.get(key) is None:
            hparams[key] = value
    unknown = set(hparams) - set(params)
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise ValueError(f"method '{cfg['method_name']}' has no argument(s) {sorted(unknown)}; "
                         f"valid: {sorted(k for k in params if k != 'self')}")
    return methods.create(cfg["method_name"], **hparams)


def build_logger(args: argparse.Namespace, cfg: Dict[str, Any], output: Path,
                 keep_log_rows: Optional[float] = None):
    """The run's logger. ``keep_log_rows``: on resume, the CSV rows of the steps before it are kept and appended to
    (a fresh run passes ``None`` and starts a new file)."""
    if args.logger == "none":
        return False
    if args.logger == "csv":
        from lightning_hash.run_folder import AppendingCSVLogger
        return AppendingCSVLogger(save_dir=str(output), name="csv", keep_before_step=keep_log_rows)
    from lightning_hash.wandb_utils import make_wandb_logger
    return make_wandb_logger(cfg, output, project=args.wandb_project, label=run_label(cfg), entity=args.wandb_entity,
                             group=args.wandb_group, tags=args.wandb_tags)


def build_trainer(args: argparse.Namespace, cfg: Dict[str, Any], output: Path, logger, model,
                  callbacks: Sequence = ()):
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from lightning_hash.callbacks import RNGStateCallback
    from lightning_hash.run_folder import AtomicCheckpointIO

    monitor = f"val/{model.select_metric}/mean"   # the method's own setting, never the test split
    checkpoint = ModelCheckpoint(dirpath=str(output / "checkpoints"), monitor=monitor, mode="max",
                                 filename="best-epoch{epoch:03d}", auto_insert_metric_name=False)
    # ``last.ckpt`` comes from its own callback, written after every epoch: Lightning's ``save_last=True`` only
    # rewrites it when the monitored checkpoint is saved (i.e. when the validation figure improves), so a resume
    # could silently restart from an older epoch. Listed after ``checkpoint`` so it holds the updated best score.
    last = ModelCheckpoint(dirpath=str(output / "checkpoints"), monitor=None, save_top_k=1, every_n_epochs=1,
                           filename=LAST_CHECKPOINT, enable_version_counter=False)
    trainer_kwargs = dict(cfg["trainer"])
    trainer_kwargs.setdefault("num_sanity_val_steps", 0)
    return pl.Trainer(
        accelerator=args.accelerator, devices=args.devices if args.devices == "auto" else int(args.devices),
        num_nodes=args.num_nodes, strategy=args.strategy, precision=args.precision, logger=logger,
        callbacks=[checkpoint, last, RNGStateCallback(), *callbacks], default_root_dir=str(output),
        plugins=[AtomicCheckpointIO()],   # temporary file + rename in the run folder itself
        deterministic=True, use_distributed_sampler=False, enable_progress_bar=not args.no_progress_bar,
        **trainer_kwargs)


def torch_cpu_threads() -> int:
    """The intra-op thread count torch's CPU kernels use in this process (``OMP_NUM_THREADS``, ``torch.set_num_threads``)."""
    import torch
    return int(torch.get_num_threads())


def library_versions() -> Dict[str, str]:
    import numpy, pytorch_lightning, torch, torchmetrics
    out = {"python": platform.python_version(), "torch": torch.__version__, "pytorch_lightning": pytorch_lightning.__version__,
           "torchmetrics": torchmetrics.__version__, "numpy": numpy.__version__}
    for name in ("timm", "wandb"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def format_table(metrics: Dict[str, float], split: str = "test") -> str:
    """The final terminal table: one row per task, one column per metric; ``-`` where a row has no such
    figure (a modality's PED has no mAP, a task no PED), never a printed NaN."""
    rows: Dict[str, Dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == split and parts[2] != "mean":
            rows.setdefault(parts[2], {})[parts[1]] = value
    if not rows:
        return "(no metrics)"
    columns: List[str] = []
    for r in rows.values():
        columns += [c for c in r if c not in columns]
    width = max(len(t) for t in rows) + 2
    lines = [f"{split:<{width}}" + "".join(f"{c:>10}" for c in columns)]
    for task, values in rows.items():
        lines.append(f"{task:<{width}}" + "".join(f"{values[c]:>10.4f}" if c in values else f"{'-':>10}"
                                                  for c in columns))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def sweep_argv(path: str) -> List[str]:
    """The flags of a sweep file as command-line arguments: ``{bits: [16, 32], set: {method.beta: 0.3}}`` gives
    ``--bits 16 32 --set method.beta=0.3``; ``true`` is a bare flag."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"--sweep: file not found: {path}")
    with open(path) as fh:
        content = load_yaml(fh) or {}
    if not isinstance(content, dict):
        raise ValueError(f"--sweep {path}: expected a mapping of flags to values, got {type(content).__name__}")
    out: List[str] = []
    for key, value in content.items():
        flag = "--" + str(key).replace("_", "-")
        if key in ("set", "overrides") and isinstance(value, dict):
            out += [a for k, v in value.items() for a in ("--set", f"{k}={json.dumps(v)}")]  # JSON is YAML
        elif value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def grid(args: argparse.Namespace) -> List[argparse.Namespace]:
    """One namespace per (method, bits, seed), in that order, each with scalar ``method``/``bits``/``seed``."""
    if not args.method and (args.resume is None or args.output is None):
        raise ValueError("--method is required (or a --sweep file with 'method:'); to continue a run, pass "
                         "--resume last with --output <run folder> (or the flags that name its default folder)")
    if getattr(args, "name", None) and len(args.method or []) > 1:
        raise ValueError(f"--name labels the runs of one method, got --method {' '.join(args.method)}; run each "
                         "variant on its own (bench.py grids: 'variants')")
    bits_values = args.bits or [None]
    points = [(m, b, s) for m in (args.method or [None]) for b in bits_values for s in args.seed]
    if len(set(points)) != len(points):
        raise ValueError("the grid repeats a (method, bits, seed) combination; list each value once")
    if len(points) > 1 and args.resume is not None:
        raise ValueError(f"--resume continues one run, not a grid of {len(points)}; pass one --method, --bits and "
                         "--seed (or --output with the run folder)")
    out = []
    for method, bits, seed in points:
        sub = argparse.Namespace(**vars(args))
        sub.method, sub.bits, sub.seed = method, bits, seed
        if len(points) > 1:          # --output is the root of the grid's run folders
            sub.output_root, sub.output = (args.output or "runs"), None
        out.append(sub)
    return out


def main(argv: Optional[Sequence[str]] = None, callbacks: Sequence = (), config_dir: Path = DEFAULT_CONFIG_DIR):
    """Run one experiment and return the content of its ``results.json``; with a grid (several methods, bits or
    seeds) run each combination and return the list of their results, in (method, bits, seed) order."""
    try:
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--sweep", default=None)
        known, _ = pre.parse_known_args(argv)
        full = (sweep_argv(known.sweep) if known.sweep else []) + list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(full)
        args.explicit = explicit_flags(full)
        runs = grid(args)
        if args.print_config:   # validated like a run, nothing read, built or written
            configs = [resolve_config(sub, config_dir) for sub in runs]
            for cfg in configs:
                print(yaml.safe_dump(cfg, sort_keys=False), end="---\n" if len(configs) > 1 else "")
            return configs[0] if len(configs) == 1 else configs
        if len(runs) == 1:
            return _run(runs[0], callbacks, config_dir)
        results = []
        for i, sub in enumerate(runs):
            print(f"\n=== grid run {i + 1}/{len(runs)}: {sub.method}, bits {sub.bits}, seed {sub.seed}")
            results.append(_run(sub, callbacks, config_dir))
            if sub.logger == "wandb":     # one W&B run per grid point: close this one before the next starts
                import wandb
                wandb.finish()
        return results
    except (ValueError, FileNotFoundError, KeyError) as err:   # RunFolderError is a ValueError
        if argv is None:  # command line: a clear message, no traceback from deep inside
            print(f"{_prog()}: error: {err}", file=sys.stderr)
            raise SystemExit(2)
        raise


def cli() -> None:
    """The console command ``lightning-hash`` (same flags and code as ``python experiments/run.py``)."""
    main()


def data_file_record(data_arg: str) -> Optional[Dict[str, Any]]:
    """For ``--data FILE`` (a bundle): its path and SHA-256, and the provenance ``<FILE>.json`` that
    ``experiments/extract_features.py`` writes beside it (backbone, weights and their SHA-256, transform), so a
    figure traces to the exact feature file. ``None`` for a registered dataset name."""
    from lightning_hash.cache import file_sha256

    path = Path(data_arg)
    if not path.is_file():
        return None
    record: Dict[str, Any] = {"path": str(path.resolve()), "sha256": file_sha256(path)}
    side = Path(str(path) + ".json")
    if side.is_file():
        try:
            prov = json.loads(side.read_text())
        except ValueError as e:
            raise ValueError(f"{side}: unreadable provenance file beside the data ({e}); fix or remove it") from e
        if prov.get("bundle_sha256") not in (None, record["sha256"]):
            raise ValueError(f"{side}: records bundle SHA-256 {prov.get('bundle_sha256')}, but {path} has "
                             f"{record['sha256']}: the provenance belongs to another file; remove it or extract again")
        record["provenance"] = prov
    return record


def selection_figures(trainer, model, dm, best: Optional[str]) -> Optional[Dict[str, float]]:
    """Every validation figure (``val/<metric>/<task>``) of the checkpoint chosen on validation, evaluated once more
    after the test (so the test figures cannot depend on it); ``None`` without a chosen checkpoint or validation
    queries. These are what a setting is tuned on (``bench.py`` tables with ``split: val``): never the test queries.
    """
    if not best or not dm.eval_set_names("val"):
        return None
    loggers, trainer.loggers = trainer.loggers, []   # the training curves stay as they were logged
    try:
        out = trainer.validate(model, datamodule=dm, ckpt_path=best, verbose=False)
    finally:
        trainer.loggers = loggers
    return {k: float(v) for k, v in (out[0] if out else {}).items()}


def check_evaluation_sizes(model, dm, allow: bool = False) -> List[str]:
    """Refuse evaluation sets that cannot support the figures asked for, before training: a rank cut-off K
    (``mAP@K``, ``P@K``, ``R@K``) larger than a task's database, or a validation or test query set without
    items. Such a figure would print (P@100 over 90 items divides by 100) but measure nothing. With ``allow``
    (``--allow-degenerate``) a cut-off beyond the database is warned about and returned (for ``results.json``)
    instead; empty query sets are always refused."""
    import warnings

    problems: List[str] = []
    ks = {"method.eval_map_at": getattr(model, "eval_map_at", []),
          "method.eval_precision_at": getattr(model, "eval_precision_at", []),
          "method.eval_recall_at": getattr(model, "eval_recall_at", [])}
    for stage in ("val", "test"):
        sets = dm.eval_set_names(stage)
        if not sets:
            continue
        for task in dm.tasks:
            n_query = len(dm.eval_rows(stage, task.query_set))
            n_db = len(dm.eval_rows(stage, task.database_set))
            if n_query == 0:
                raise ValueError(f"the {stage} queries of task {task.name} ('{task.query_set}') are empty; change "
                                 "the split sizes (data.n_query, data.n_val, ...)")
            for key, values in ks.items():
                too_big = [k for k in values if k > n_db]
                if too_big:
                    message = (f"the {stage} database of task {task.name} holds {n_db} items, fewer than the rank "
                               f"cut-off {max(too_big)} of {key}={list(values)}: the figure would not measure a "
                               f"ranking. Lower it (e.g. --set {key}=[{max(1, n_db // 2)}]) or enlarge the database "
                               "(the split sizes)")
                    if not allow:
                        raise ValueError(message + "; --allow-degenerate runs anyway and records it")
                    warnings.warn(message, stacklevel=2)
                    problems.append(message)
    return problems


def check_resume_flags(args: argparse.Namespace, cfg: Dict[str, Any], output: Path) -> None:
    """A resume continues the saved run: refuse every given flag that contradicts its ``config.yaml``."""
    given = getattr(args, "explicit", set())
    missing = object()
    conflicts = []
    for flag, dest, saved in (("--method", "method", cfg.get("method_name")), ("--name", "name", run_label(cfg)),
                              ("--data", "data", cfg.get("data_arg")),
                              ("--bits", "bits", cfg.get("bits")), ("--seed", "seed", cfg.get("seed")),
                              ("--batch-size", "batch_size", cfg["data"].get("batch_size", missing)),
                              ("--data-root", "data_root", cfg["data"].get("root", missing)),
                              ("--precision", "precision", cfg.get("precision"))):
        value = getattr(args, dest, None)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if dest in given and value != saved:
            conflicts.append(f"{flag} {value} (the run has {'nothing set' if saved is missing else saved})")
    for section, values in _parse_overrides(args.overrides).items():
        for key, value in values.items():
            saved = cfg.get(section, {}).get(key, missing)
            if value != saved:
                conflicts.append(f"--set {section}.{key}={value} (the run has "
                                 f"{'nothing set' if saved is missing else saved})")
    for flag, dest in (("--config", "config"), ("--sweep", "sweep"), ("--overwrite", "overwrite")):
        if dest in given and getattr(args, dest):
            conflicts.append(f"{flag} (a resume continues the saved configuration)")
    if conflicts:
        raise ValueError(f"--resume continues the run in {output} as saved in its {CONFIG_FILE}; these flags "
                         f"contradict it: {'; '.join(conflicts)}. A resume may change only "
                         f"{', '.join(RESUME_MAY_CHANGE)}; start a new run (another --output) to change the rest")


def _write_config(cfg: Dict[str, Any], output: Path) -> None:
    from datamodules.files import write_text_atomic
    write_text_atomic(output / CONFIG_FILE, yaml.safe_dump(cfg, sort_keys=False))


def _run(args: argparse.Namespace, callbacks: Sequence, config_dir: Path) -> Dict[str, Any]:
    from pytorch_lightning.utilities import rank_zero_only

    from lightning_hash.run_folder import RunLock, check_fresh_folder, clear_run_files

    check_devices(args)
    if args.resume is not None and args.overwrite:
        raise ValueError("--resume continues a run and --overwrite replaces it: pass one of them")
    # a fresh run's configuration, resolved (and validated) once; a resume reads the saved one
    fresh = resolve_config(args, config_dir) if args.resume is None else None
    if args.output:
        output = Path(args.output)
    elif fresh is not None:
        output = default_output(fresh, getattr(args, "output_root", "runs"))
    elif args.resume == "last":   # the folder the flags name
        output = default_output(resolve_config(args, config_dir), getattr(args, "output_root", "runs"))
    else:
        output = Path(args.resume).resolve().parent.parent
    progress = {"training_started": False}
    if rank_zero_only.rank != 0:   # a DDP worker started by rank 0, which holds the lock and wrote the folder
        return _run_in_folder(args, callbacks, fresh, output, progress)
    with RunLock(output):
        if args.resume is None:
            if args.overwrite:
                clear_run_files(output)
            check_fresh_folder(output, overwrite=False)
        try:
            return _run_in_folder(args, callbacks, fresh, output, progress)
        except BaseException:
            # a fresh run that failed before training (bad data, a bad setting) leaves no half run folder that
            # would block the corrected command; once training started, its checkpoints are kept for --resume
            if args.resume is None and not progress["training_started"]:
                clear_run_files(output)
            raise


def _run_in_folder(args: argparse.Namespace, callbacks: Sequence, fresh: Optional[Dict[str, Any]], output: Path,
                   progress: Dict[str, bool]) -> Dict[str, Any]:
    """One run in ``output``: a resume (``fresh is None``) reads the saved configuration, a fresh run uses
    ``fresh``."""
    import pytorch_lightning as pl
    from pytorch_lightning.utilities import rank_zero_only

    from lightning_hash.run_folder import checkpoint_epochs, checkpoint_logged_step, load_checkpoint_file

    keep_log_rows = None
    if args.resume is not None:
        ckpt_path = resolve_resume(args.resume, output)
        saved = output / CONFIG_FILE
        if not saved.is_file():
            raise FileNotFoundError(f"--resume: {saved} not found; it is written when a run starts")
        with open(saved) as fh:
            cfg = load_yaml(fh)
        if not isinstance(cfg, dict) or not {"method", "data", "trainer", "method_name"} <= set(cfg):
            raise ValueError(f"--resume: {saved} is not a run configuration written by run.py")
        check_resume_flags(args, cfg, output)
        args.precision = cfg.get("precision")   # the saved run's (the flag may only repeat it)
        ckpt = load_checkpoint_file(Path(ckpt_path))   # a damaged checkpoint: an error naming it, here
        done, keep_log_rows = checkpoint_epochs(ckpt), checkpoint_logged_step(ckpt)
        if keep_log_rows is None:   # the checkpoint does not say its step: keep every logged row, lose none
            keep_log_rows = float("inf")
        del ckpt
        if args.max_epochs is not None:   # the one setting a resume may change: train for longer
            if args.max_epochs < done:
                raise ValueError(f"--max-epochs {args.max_epochs}: the checkpoint {ckpt_path} has already trained "
                                 f"{done} epochs; pass --max-epochs {done} or more (nothing was changed)")
            if args.max_epochs != cfg["trainer"].get("max_epochs") and rank_zero_only.rank == 0:
                cfg["trainer"]["max_epochs"] = args.max_epochs
                _write_config(cfg, output)
            cfg["trainer"]["max_epochs"] = args.max_epochs
    else:
        cfg = fresh
        cfg["precision"] = args.precision
        ckpt_path = None
        if rank_zero_only.rank == 0:
            output.mkdir(parents=True, exist_ok=True)
            _write_config(cfg, output)

    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    dm = build_datamodule(cfg, output)
    model = build_method(cfg, dm)
    model.check_tasks(dm.tasks)   # e.g. a single-modal method on a cross-modal task: refused before training
    degenerate = check_evaluation_sizes(model, dm, allow=getattr(args, "allow_degenerate", False))
    data_file = data_file_record(cfg["data_arg"])   # a provenance file naming another bundle: refused before training
    logger = build_logger(args, cfg, output, keep_log_rows)
    trainer = build_trainer(args, cfg, output, logger, model, callbacks)
    if logger:
        logger.log_hyperparams({"method": cfg["method_name"], "name": run_label(cfg), "data": cfg["data_name"],
                                "bits": cfg["bits"], "seed": cfg["seed"], "method_args": cfg["method"], "data_args": cfg["data"],
                                "trainer_args": cfg["trainer"]})

    start = time.time()
    progress["training_started"] = True
    if model.requires_training:
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
        best = trainer.checkpoint_callback.best_model_path or None
        test_out = trainer.test(model, datamodule=dm, ckpt_path=best or None, verbose=False)
        val_metrics = selection_figures(trainer, model, dm, best)
    else:
        model.fit_once(dm)
        trainer.strategy.connect(model)          # a checkpoint of the fitted model, like a trained one
        best = str(output / "checkpoints" / "fitted.ckpt")
        trainer.save_checkpoint(best)
        test_out = trainer.test(model, datamodule=dm, verbose=False)
        val_metrics = None
    elapsed = time.time() - start

    metrics = {k: float(v) for k, v in (test_out[0] if test_out else {}).items()}
    ckpt_cb = trainer.checkpoint_callback
    results = {
        "method": cfg["method_name"], "name": run_label(cfg), "data": cfg["data_name"], "bits": cfg["bits"],
        "seed": cfg["seed"], "metrics": metrics,
        "metric_conventions": {
            "tie_break": model.tie_break, "empty_queries": "zero", "relevant": "shares at least one label",
            "mAP@K": "AP over the first K ranks, normalised by the relevant items within them",
            f"P@r{model.eval_radius}": "per-query mean; 0 for a query with nothing within the radius"},
        "model_selection": {"monitor": f"val/{model.select_metric}/mean",
                            "best_score": float(ckpt_cb.best_model_score) if ckpt_cb and ckpt_cb.best_model_score is not None else None,
                            "best_checkpoint": best,
                            "last_checkpoint": str(output / "checkpoints" / f"{LAST_CHECKPOINT}.ckpt") if model.requires_training else best,
                            "val_metrics": val_metrics},
        "curves": model.test_curves,
        "code_stats": model.test_code_stats,
        "warnings": degenerate,   # figures the evaluation sets could not support (--allow-degenerate)
        "epochs_trained": trainer.current_epoch, "train_and_test_seconds": round(elapsed, 2),
        "split_file": str(output / SPLIT_FILE), "data_file": data_file, "config": cfg,
        "devices": {"accelerator": args.accelerator, "devices": args.devices, "num_nodes": args.num_nodes,
                    "strategy": str(args.strategy), "world_size": trainer.world_size,
                    # torch splits its CPU reductions by thread, so the last bits of a CPU run (and, through a
                    # long training, its figures) depend on this count: part of what a figure traces to
                    "cpu_threads": torch_cpu_threads()},
        "versions": library_versions(),
        "command": " ".join([Path(sys.argv[0]).name] + list(sys.argv[1:])),
    }
    if trainer.is_global_zero:
        with open(output / RESULTS_FILE, "w") as fh:
            json.dump(results, fh, indent=2)
        if logger and args.logger == "wandb":
            from lightning_hash.wandb_utils import log_final
            log_final(logger, results)
        print(f"\n{run_label(cfg)} on {cfg['data_name']}, {cfg['bits']} bits, seed {cfg['seed']}")
        print(format_table(metrics))
        print(f"results: {output / RESULTS_FILE}")
    return results

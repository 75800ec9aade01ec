"""What a new user gets: the README's commands are CI's, and the wheel carries everything a run reads.

* ``.ci/run`` runs the README's set-up and test commands, in a fresh virtual environment;
* the wheel holds the per-method configs and the paper figures as package data, and the console command
  ``lightning-hash``; installed non-editable and run from another folder, it writes the same ``config.yaml`` as
  ``python experiments/run.py`` in the checkout (a missing config folder would silently have given the
  constructor defaults before).
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from lightning_hash.experiment import main

ROOT = Path(__file__).resolve().parents[1]
RUN = ["--method", "djsrh", "--bits", "16", "--max-epochs", "1", "--logger", "none", "--no-progress-bar",
       "--set", "trainer.limit_train_batches=2"]


def _readme_block(heading: str) -> list:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_commands_in_a_fresh_environment():
    ci = (ROOT / ".ci" / "run").read_text()
    setup = _readme_block("## Set up and run")
    install = [c for c in setup if "pip install" in c]
    assert install and all(c in ci for c in install), install
    assert "-c constraints.txt" in install[0] and (ROOT / "constraints.txt").is_file()
    venv = [c for c in setup if "venv" in c][0]   # README: python3 -m venv .venv && . .venv/bin/activate
    for part in venv.split("&&"):
        assert part.strip() in ci, part
    tests = _readme_block("\nTests (")
    assert tests == ["python -m pytest -q"] and "python -m pytest -q" in ci
    pinned = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    for name in ("torch", "torchvision", "pytorch-lightning", "torchmetrics", "timm", "wandb", "numpy"):
        assert name in pinned, name


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("lightning_hash", "datamodules"):
        shutil.copytree(ROOT / package, src / package, ignore=ignore)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)]
    if importlib.util.find_spec("setuptools") is not None:   # build here, without fetching a build environment
        cmd.append("--no-build-isolation")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next((tmp_path / "dist").glob("lightning_hash-*.whl"))


@pytest.mark.slow
def test_wheel_holds_configs_and_console_command_matches_run_py(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(p.name for p in (ROOT / "lightning_hash" / "configs").glob("*.yaml"))
    assert configs and all(f"lightning_hash/configs/{c}" in names for c in configs), configs
    assert "lightning_hash/paper_figures.yaml" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lightning-hash = lightning_hash.experiment:cli" in zipfile.ZipFile(wheel).read(entry).decode()

    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "WANDB_MODE": "offline"}
    where = subprocess.run([sys.executable, "-c", "import lightning_hash; print(lightning_hash.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(target)), where.stdout   # the wheel's copy, not the checkout
    installed = subprocess.run([str(target / "bin" / "lightning-hash"), *RUN, "--output", str(elsewhere / "run")],
                               cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    main(RUN + ["--output", str(tmp_path / "checkout_run")])
    got = yaml.safe_load((elsewhere / "run" / "config.yaml").read_text())
    want = yaml.safe_load((tmp_path / "checkout_run" / "config.yaml").read_text())
    assert got == want
    assert want["method"]["image_hidden"] == 1024   # digits' setting in djsrh.yaml (the constructor says 4096)


def test_missing_config_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config folder not found"):
        main(RUN + ["--output", str(tmp_path / "run")], config_dir=tmp_path / "no_such_folder")

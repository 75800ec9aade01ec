"""Typed configuration: unknown keys and wrong types are one-line errors before anything is read or built;
every shipped config validates; --print-config shows the resolved configuration."""
import argparse
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import pytest
import yaml

from lightning_hash.config import ConfigError, check_section, signature_parameters
from lightning_hash.experiment import DEFAULT_CONFIG_DIR, build_parser, main, resolve_config

ROOT = Path(__file__).resolve().parents[2]

TYPOS = [
    ("method.lr_imag=0.1", r"method\.lr_imag: unknown key for djsrh; did you mean method\.lr_image\?"),
    ("method.lr_image=fast", r"method\.lr_image='fast': djsrh expects float"),
    ("trainer.max_epoch=1", r"trainer\.max_epoch: unknown key .*did you mean trainer\.max_epochs\?"),
    ("data.batchsize=3", r"data\.batchsize: unknown key for DigitsDataModule .*did you mean data\.batch_size\?"),
]


@pytest.mark.parametrize("setting, message", TYPOS)
def test_typos_are_one_line_errors_before_anything_is_read(tmp_path, monkeypatch, setting, message):
    import datamodules
    monkeypatch.setattr(datamodules.RetrievalDataModule, "setup",
                        lambda self, stage=None: pytest.fail("data were read before the configuration was checked"))
    with pytest.raises(ConfigError, match=message) as err:
        main(["--method", "djsrh", "--logger", "none", "--output", str(tmp_path / "run"), "--set", setting])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_typo_on_the_command_line_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "run.py"), "--method", "djsrh", "--output",
                           str(tmp_path / "run"), "--set", "trainer.max_epoch=1"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "trainer.max_epoch" in lines[0], proc.stderr


@pytest.mark.parametrize("setting, message", [
    ("method.seed=3", r"method\.seed is set by run\.py; use --seed"),
    ("trainer.devices=2", r"trainer\.devices is set by run\.py; use --devices"),
    ("data.split_file=x.json", r"data\.split_file is set by run\.py"),
    ("method.eval_map_at=[a]", r"method\.eval_map_at=\['a'\]: djsrh expects Sequence\[int\]"),
    ("trainer.max_epochs=x", r"trainer\.max_epochs='x': .*expects"),
])
def test_reserved_keys_and_nested_types(tmp_path, setting, message):
    with pytest.raises(ConfigError, match=message):
        main(["--method", "djsrh", "--logger", "none", "--output", str(tmp_path / "run"), "--set", setting])


def _datasets_of(method: str) -> list:
    content = yaml.safe_load((DEFAULT_CONFIG_DIR / f"{method}.yaml").read_text()) or {}
    return ["digits"] + sorted(content.get("datasets") or {})


@pytest.mark.parametrize("method", sorted(p.stem for p in DEFAULT_CONFIG_DIR.glob("*.yaml")))
def test_every_shipped_config_validates_on_every_dataset_it_names(method):
    for data in _datasets_of(method):
        args = build_parser().parse_args(["--method", method, "--data", data])
        args.method, args.bits, args.seed = method, None, 0
        cfg = resolve_config(args)
        assert cfg["method_name"] == method and cfg["data_name"] == data


def test_print_config_prints_the_resolved_configuration_and_writes_nothing(tmp_path, capsys):
    cfg = main(["--method", "djsrh", "--print-config", "--set", "method.beta=0.5", "--output", str(tmp_path / "r")])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == cfg and printed["method"]["beta"] == 0.5
    assert not (tmp_path / "r").exists()


def _example(bits: int, rate: float = 0.1, name: Optional[str] = None, ks: Sequence[int] = (1,), **kwargs):
    """A function with the shapes of annotation the sections use."""


class _Base:
    def __init__(self, depth: int = 1) -> None:
        pass


class _Child(_Base):
    def __init__(self, width: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)


def test_check_section_against_hand_written_cases():
    params = signature_parameters(_example)
    assert set(params) == {"bits", "rate", "name", "ks"}
    check_section("method", {"bits": 3, "rate": 2, "name": None, "ks": [1, 2]}, params, "f")   # int is a float
    for values, message in (({"bits": "3"}, "method.bits='3': f expects int"),
                            ({"rate": "fast"}, "method.rate='fast': f expects float"),
                            ({"ks": [1.5]}, "method.ks=[1.5]: f expects Sequence[int]"),
                            ({"nmae": "x"}, "did you mean method.name?")):
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
            check_section("method", values, params, "f")
    assert set(signature_parameters(_Child)) == {"width", "depth"}   # follows **kwargs to the base
    check_section("data", {"anything": 1}, {}, "d", extra_keys=["anything"])
    with pytest.raises(ConfigError, match="expected a mapping"):
        check_section("data", [1], {}, "d")


def test_parser_defaults_are_unchanged():
    args = build_parser().parse_args(["--method", "djsrh"])
    assert isinstance(args, argparse.Namespace) and args.data == "digits" and args.print_config is False

"""Typed validation of a run's configuration sections, from the constructor signatures, before anything is built.

``run.py`` merges ``method:``, ``data:`` and ``trainer:`` settings from the method's YAML, ``--config``, the flags
and ``--set``. Each section is checked here against the signature of what it configures (the method class, the
DataModule class, ``pytorch_lightning.Trainer``): an unknown key is a one-line error naming it, the closest valid
key and the valid keys; a value of the wrong type is a one-line error naming the key, the expected type and the
value. Types are checked by jsonargparse (LightningCLI's engine) from the annotations; the values themselves
are passed on unchanged. Nothing is read or built before this passes.
"""
from __future__ import annotations

import difflib
import inspect
import typing
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence

__all__ = ["ConfigError", "signature_parameters", "check_section"]


class ConfigError(ValueError):
    """A configuration key is unknown, or its value has the wrong type (a one-line message)."""


def _hints(fn: Callable) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: checked as untyped
        return {}


def signature_parameters(*callables: Callable, skip: Iterable[str] = ()) -> Dict[str, Any]:
    """``{name: annotation}`` of the keyword parameters of ``callables`` (a class means its ``__init__``).

    A class whose ``__init__`` takes ``**kwargs`` contributes its bases' ``__init__`` parameters too (the
    keywords it forwards to ``super().__init__``); unannotated parameters map to ``Any``.
    """
    out: Dict[str, Any] = {}
    skip = set(skip) | {"self"}
    for item in callables:
        chain = [c for c in inspect.getmro(item) if "__init__" in vars(c)] if isinstance(item, type) else [item]
        for fn in (c.__init__ if isinstance(c, type) else c for c in chain):
            params = inspect.signature(fn).parameters.values()
            hints = _hints(fn)
            for p in params:
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in skip:
                    continue
                out.setdefault(p.name, hints.get(p.name, Any))
            if not any(p.kind == p.VAR_KEYWORD for p in params):
                break   # it forwards nothing further up
    return out


def _type_name(annotation: Any) -> str:
    text = inspect.formatannotation(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")


_PARSERS: Dict[Any, Any] = {}


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether jsonargparse accepts ``value`` for ``annotation`` (a small parser per annotation, cached)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    from jsonargparse import ArgumentParser

    key = repr(annotation)
    if key not in _PARSERS:
        parser = ArgumentParser(exit_on_error=False)
        try:
            parser.add_argument("--value", type=annotation)
        except Exception:  # noqa: BLE001 - a type jsonargparse cannot express: not checked
            parser = None
        _PARSERS[key] = parser
    parser = _PARSERS[key]
    if parser is None:
        return True
    try:
        parsed = parser.parse_object({"value": value}).value
    except Exception:  # noqa: BLE001 - jsonargparse's ArgumentError (and TypeError on odd values)
        return False
    # jsonargparse reads a string as command-line text ('3' -> 3); the value is passed on unchanged, so a string
    # is accepted only where the type takes the string itself
    return not (isinstance(value, str) and not isinstance(parsed, str))


def check_section(section: str, values: Optional[Mapping[str, Any]], parameters: Mapping[str, Any], owner: str,
                  extra_keys: Sequence[str] = (), reserved: Optional[Mapping[str, str]] = None) -> None:
    """Raise :class:`ConfigError` on the first unknown, reserved or ill-typed key of ``values``.

    Parameters
    ----------
    section: ``method``, ``data`` or ``trainer`` (named in the message as ``section.key``).
    parameters: ``{name: annotation}``, e.g. from :func:`signature_parameters`.
    owner: what the section configures, for the message (``"djsrh"``, ``"DigitsDataModule"``).
    extra_keys: further accepted keys, untyped (e.g. a split protocol's arguments).
    reserved: ``{key: flag}`` keys the runner sets itself, refused with the flag to use instead.
    """
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise ConfigError(f"{section}: expected a mapping of settings, got {type(values).__name__}")
    valid = sorted((set(parameters) | set(extra_keys)) - set(reserved or ()))
    for key, value in values.items():
        if reserved and key in reserved:
            raise ConfigError(f"{section}.{key} is set by run.py; use {reserved[key]} instead")
        if key not in parameters and key not in extra_keys:
            close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
            hint = f"did you mean {section}.{close[0]}? " if close else ""
            raise ConfigError(f"{section}.{key}: unknown key for {owner}; {hint}valid keys: {', '.join(valid)}")
        annotation = parameters.get(key, Any)
        if not _accepts(annotation, value):
            raise ConfigError(f"{section}.{key}={value!r}: {owner} expects {_type_name(annotation)}")

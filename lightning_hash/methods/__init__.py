"""Hashing methods, one file per method (family), behind one registry: ``create(name, **hparams)``.

Every module in this package is imported here, so a new method file registers itself with ``@register``.
"""
import importlib
import pkgutil

from lightning_hash.methods._registry import available, create, get, register

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["available", "create", "get", "register"]

"""One registry of methods, one factory (as timm's ``create_model``)."""
from __future__ import annotations

from typing import Callable, Dict, List, Type

_METHODS: Dict[str, type] = {}


def register(name: str) -> Callable[[Type], Type]:
    """Class decorator: make a :class:`~lightning_hash.module.HashingModule` available as ``name``."""
    def wrap(cls: Type) -> Type:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method name '{name}' is registered twice ({_METHODS[name].__name__}, {cls.__name__})")
        _METHODS[name] = cls
        cls.method_name = name
        return cls
    return wrap


def available() -> List[str]:
    """Registered method names, sorted."""
    return sorted(_METHODS)


def get(name: str) -> type:
    """The method class registered as ``name``; a ``ValueError`` lists the valid names otherwise."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method '{name}'; valid methods: {', '.join(available())}") from None


def create(name: str, **hparams):
    """Build method ``name`` with its constructor arguments, e.g. ``create("djsrh", bits=64, image_dim=128)``."""
    return get(name)(**hparams)

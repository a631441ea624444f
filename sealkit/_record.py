"""`Record`: ``typing.NamedTuple`` for the type checker, ``collections.namedtuple`` at run time.

The option and kubeconfig records are built on every cluster call, whose cold start is
benchmarked against the Go kubeseal. ``typing.NamedTuple`` costs the ``typing`` import plus,
with postponed annotations, one ``compile()`` per field (each string annotation becomes a
``ForwardRef``): more than the records are worth on a path that needs neither. A class body
written as for ``typing.NamedTuple`` (annotated fields, defaults last, methods, properties,
classmethods) gives the same class here, minus ``__annotations__`` evaluation.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; mypy treats it as True
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    # What typing.NamedTuple refuses to overwrite (namedtuple's own machinery).
    _PROHIBITED = frozenset(
        {
            "__new__",
            "__init__",
            "__slots__",
            "__getnewargs__",
            "_fields",
            "_field_defaults",
            "_make",
            "_replace",
            "_asdict",
            "_source",
        }
    )
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__", "__qualname__"})

    class _RecordMeta(type):
        def __new__(mcls, name, bases, ns):  # noqa: N804 - a metaclass
            if not bases:  # `Record` itself
                return super().__new__(mcls, name, bases, ns)
            fields = list(ns.get("__annotations__", {}))
            defaults = [ns[f] for f in fields if f in ns]
            if fields[len(fields) - len(defaults) :] != [f for f in fields if f in ns]:
                raise TypeError(f"{name}: a field without a default follows one with a default")
            cls = collections.namedtuple(
                name, fields, defaults=defaults, module=ns.get("__module__")
            )
            cls.__annotations__ = dict(ns.get("__annotations__", {}))
            cls.__qualname__ = ns.get("__qualname__", name)
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
                if key not in _SPECIAL and key not in fields:
                    setattr(cls, key, value)
            return cls

    class Record(metaclass=_RecordMeta):
        """Base of the records (see the module docstring)."""

        __slots__ = ()


__all__ = ["TYPE_CHECKING", "Record"]

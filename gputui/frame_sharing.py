"""What a thousand hosts send alike is kept once.

Each pydantic model carries its own set of the names of the fields that were
sent: about 2 KB for a GPU's sample, more than the values themselves, and the
same set on every host that runs the same agent. A GPU's error counters
(ECC, retired pages, remapped rows, NVLink) are all zero, or equal, on nearly
every GPU of a fleet. Frames are frozen once decoded, so sharing one object
between hosts changes nothing a reader can see; at 4,096 hosts it saves about
a third of the frames' memory, and every shared object is one the garbage
collector no longer walks.

Both tables are bounded caches of values that never change: an agent that
sends unusual field sets or counters only costs itself the sharing.
"""

from __future__ import annotations

from collections.abc import Set
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel

from gputui.frames import Ecc, NvlinkErrors, RemappedRows, RetiredPages

_M = TypeVar("_M", bound=BaseModel)
_set = object.__setattr__
_new = object.__new__
COUNTER_MODELS: frozenset[type[BaseModel]] = frozenset({Ecc, NvlinkErrors, RemappedRows, RetiredPages})
PLAIN: frozenset[type] = frozenset({int, float, str, bool, type(None)})


@lru_cache(maxsize=1024)
def _names(names: frozenset[str]) -> set[str]:
    # Shared and never changed in place: pydantic copies a model's set before it adds to it.
    return set(names)


def shared_names(names: Set[str]) -> set[str]:
    """The one set of these field names that every model sent with them holds."""
    return _names(frozenset(names))


def built(kind: type[_M], values: dict[str, Any], names: set[str]) -> _M:
    """A model of values already validated, as ``model_construct`` makes one without its per-field walk."""
    model = _new(kind)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", names)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


@lru_cache(maxsize=4096)
def _counters(kind: type[_M], items: tuple[tuple[str, Any], ...], names: frozenset[str]) -> _M:
    return built(kind, dict(items), _names(names))


def shared_counters(model: _M) -> _M:
    """The one model of this kind with these values (a counters model: plain values only)."""
    one: _M = _counters(type(model), tuple(model.__dict__.items()), frozenset(model.__pydantic_fields_set__))
    return one


def share_values(values: dict[str, Any]) -> None:
    """Make the models among ``values`` (a model's, or a delta's changes) hold shared parts, in place.
    Most values are plain, and asking their exact type first is much cheaper than ``isinstance``
    against a pydantic model (through its metaclass)."""
    for key, value in values.items():
        if type(value) not in PLAIN:
            values[key] = shared_value(value)  # the same key: the dict does not resize


def shared_value(value: Any) -> Any:
    """What to keep in place of ``value``, a value that is not plain: the one counters model of its
    values, or the value itself with the models in it holding shared parts."""
    if isinstance(value, BaseModel):
        if type(value) in COUNTER_MODELS:
            return shared_counters(value)
        share(value)
    elif type(value) is list:
        for item in value:
            if isinstance(item, BaseModel):
                share(item)
    return value


def share(model: BaseModel) -> None:
    """Make a model just validated, and the models in it, hold shared parts. Only for a model
    no reader has seen yet: it is changed in place (its values stay equal)."""
    _set(model, "__pydantic_fields_set__", shared_names(model.__pydantic_fields_set__))
    share_values(model.__dict__)

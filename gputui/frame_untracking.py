"""Frames the store keeps are taken out of the garbage collector's walk.

Python's cyclic collector stops the event loop for as long as it takes to
walk every container object in the generations it collects. A dashboard's
largest set of such objects is its hosts' last frames: about 35 per 8-GPU
host (the GPU samples, their dicts, their process lists and processes), made
anew every second. Walking them was most of each collection's pause (a full
one about 35 ms at 1,024 hosts, four times that at 4,096) and, collected ten
times a second, about 4 % of a core at 1,024 hosts.

The collector only looks for reference cycles, and a frame cannot be in one:
it is a tree of frozen models, lists and plain values, decoded from one line,
and nothing in it refers back to anything that holds it. Reference counting
frees it the moment the next frame replaces it, tracked or not. So the store
asks CPython to stop tracking each of its objects (``PyObject_GC_UnTrack``,
part of the C API, through ``ctypes.pythonapi``). Where that is missing (an
interpreter other than CPython) frames stay tracked, as before: slower, not
wrong. What keeps this true is that frame models stay plain data: no cached
attributes, no finalisers, no references back (tests/test_frame_untracking.py
checks the models for the first two); a cycle through an untracked model
would never be collected.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable
from functools import cache
from typing import get_args, get_origin

from pydantic import BaseModel

Untrack = Callable[[object], None]


def untracker() -> Untrack | None:
    """CPython's ``PyObject_GC_UnTrack``, or None where there is none to call."""
    api: ctypes.PyDLL | None = getattr(ctypes, "pythonapi", None)
    if api is None:
        return None
    try:
        call = api["PyObject_GC_UnTrack"]  # a function object of our own: ``api.name`` is one shared by the process
    except AttributeError:
        return None
    call.argtypes = [ctypes.py_object]
    call.restype = None
    untrack: Untrack = call
    return untrack


def untrack_frame(model: BaseModel, untrack: Untrack) -> None:
    """Take a frame (a hello, a sample) and every object in it out of the collector's walk.

    A model already untracked was untracked with everything in it, and frames never change: a
    sample rebuilt from a delta shares its unchanged GPUs with the one before, so only what the
    delta made is walked here. Only the fields that can hold a container are looked at (a GPU's
    sample has about 30 fields, 9 of them such): ``isinstance`` against a pydantic model goes
    through its metaclass, and asking it of every value was most of this function's time."""
    if not gc.is_tracked(model):
        return
    untrack(model)
    values = model.__dict__
    for part in (values, model.__pydantic_fields_set__):
        if gc.is_tracked(part):
            untrack(part)
    for name in container_fields(type(model)):
        value = values.get(name)
        if value is not None:
            _untrack_value(value, untrack)


def _untrack_value(value: object, untrack: Untrack) -> None:
    """A field's value or a container's item: a model, a container of them, or a plain value
    (left as it is: the collector never tracked it, or it is not the frame's to change)."""
    if type(value) in PLAIN:
        return
    if isinstance(value, CONTAINERS):
        if gc.is_tracked(value):
            untrack(value)
            for item in value.values() if isinstance(value, dict) else value:
                _untrack_value(item, untrack)
    elif isinstance(value, BaseModel):  # asked last: through pydantic's metaclass, the slowest
        untrack_frame(value, untrack)


PLAIN = frozenset({str, int, float, bool, type(None)})
CONTAINERS = (list, tuple, set, frozenset, dict)


@cache  # one entry per frame model class
def container_fields(kind: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a model that can hold a model, a list or a dict, by their annotations."""
    return tuple(name for name, info in kind.model_fields.items() if holds_containers(info.annotation))


def holds_containers(annotation: object) -> bool:
    if isinstance(annotation, type):
        return annotation in CONTAINERS or issubclass(annotation, BaseModel)
    if get_origin(annotation) in CONTAINERS:
        return True
    return any(holds_containers(arg) for arg in get_args(annotation))

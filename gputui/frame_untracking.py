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
part of the C API, through ``ctypes.pythonapi``); a host's decoder does so
as it decodes (gputui/frame_decoder.py), knowing what each delta made, and
the store finds those frames done. Where that call is missing (an
interpreter other than CPython) frames stay tracked, as before: slower, not
wrong. What keeps this true is that frame models stay plain data: no cached
attributes, no finalisers, no references back (tests/test_frame_untracking.py
checks the models for the first two); a cycle through an untracked model
would never be collected.
"""

from __future__ import annotations

import ctypes
import gc
import platform
from collections.abc import Callable, Iterable
from functools import cache
from typing import get_args, get_origin

from pydantic import BaseModel

Untrack = Callable[[int], None]  # called with ``id(obj)``: the object's address, in CPython


def untracker() -> Untrack | None:
    """CPython's ``PyObject_GC_UnTrack``, or None where there is none to call.

    It is called with the object's address (``id``) as a plain pointer, not the object: ctypes
    converts an int in about two thirds of the time it takes to wrap an object, and a frame
    has dozens of objects to untrack a second per host. The caller holds the object while it
    calls, so the address is that of a live object."""
    if platform.python_implementation() != "CPython":
        return None  # ``id`` is an address only there
    api: ctypes.PyDLL | None = getattr(ctypes, "pythonapi", None)
    if api is None:
        return None
    try:
        call = api["PyObject_GC_UnTrack"]  # a function object of our own: ``api.name`` is one shared by the process
    except AttributeError:
        return None
    call.argtypes = [ctypes.c_void_p]
    call.restype = None
    untrack: Untrack = call
    return untrack


@cache
def process_untracker() -> Untrack | None:
    """:func:`untracker`, looked up once for the process: every host's decoder calls it."""
    return untracker()


def untrack_frame(model: BaseModel, untrack: Untrack) -> None:
    """Take a frame (a hello, a sample) and every object in it out of the collector's walk.

    A part the collector does not track is passed over whatever it is: a plain value (never
    tracked), or a part already untracked with everything in it (frames never change: a sample
    rebuilt from a delta shares its unchanged GPUs with the one before, so only what the delta
    made is walked here). That is asked before any call, as most parts are such. Only the
    fields that can hold a container are looked at (a GPU's sample has about 30 fields, 9 of
    them such), and a part's type is asked exactly before ``isinstance`` against a pydantic
    model, which goes through its metaclass: asking that of every value was most of the time."""
    if is_tracked(model):
        _untrack_model(model, untrack)


def _untrack_model(model: BaseModel, untrack: Untrack) -> None:
    untrack_shell(model, untrack)
    values = model.__dict__
    for name in container_fields(type(model)):
        value = values.get(name)
        if value is not None and is_tracked(value):
            untrack_part(value, untrack)


def untrack_shell(model: BaseModel, untrack: Untrack) -> None:
    """The model itself, its dict of values and its set of field names, where tracked, but none of
    the values: for a model made from parts already out of the walk (gputui/frame_decoder.py)."""
    untrack(id(model))
    values = model.__dict__
    if is_tracked(values):
        untrack(id(values))
    names = model.__pydantic_fields_set__
    if is_tracked(names):
        untrack(id(names))


def untrack_part(value: object, untrack: Untrack) -> None:
    """A tracked field's value or container's item: a model, a container of them, or something
    that is not the frame's to change (left as it is)."""
    kind = type(value)
    items: Iterable[object]
    if kind is list or kind is tuple:
        items = value  # type: ignore[assignment]
    elif kind is dict:
        items = value.values()  # type: ignore[attr-defined]
    elif isinstance(value, BaseModel):
        _untrack_model(value, untrack)
        return
    elif isinstance(value, CONTAINERS):  # a subclass of one, or a set
        items = value.values() if isinstance(value, dict) else value
    else:
        return
    untrack(id(value))
    for item in items:
        if is_tracked(item):
            untrack_part(item, untrack)


is_tracked = gc.is_tracked
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

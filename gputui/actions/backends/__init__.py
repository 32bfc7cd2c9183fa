"""Where an action is carried out, by the name a config's ``backend`` gives.

Each module here builds one flavour of :class:`~gputui.actions.backends.base.ActionBackend`
from a ``backend(config)`` factory; gputui/registry.py's ACTION_BACKENDS says
which module serves which name, and the guard loads a module only when a host
it acts on uses it.
"""

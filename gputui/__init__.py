"""gputui: a terminal dashboard for GPU cluster operations."""

__version__ = "0.1.0"

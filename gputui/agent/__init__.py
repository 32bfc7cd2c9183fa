"""The agent: the only gputui code that runs on a GPU host.

Everything under this package (and ``gputui.sim``) must import with nothing
but the Python 3.8+ standard library and ``pynvml``, because it is shipped to
hosts as a zip bundle and run by whatever ``python3`` the host has.
"""

AGENT_VERSION = "0.1.0"

"""Where frames come from: one module per kind of source, named in gputui/registry.py.

A source hands the fleet parsed frames for one host (``base.Source``); how
its bytes travel (SSH, a child process) is gputui/transport's business.
``fleet.open_fleet`` builds the store and the sources for every command
(the dashboard, snapshot, check, record) from ``--demo`` or a config.
"""

"""The host screen's tabs, one module per panel.

Each panel is a container that the host screen asks to redraw from a
:class:`~gputui.ui.panels.base.HostView` once a second, and only while its
tab is the one shown, so hidden tabs cost nothing.
"""

"""Modal dialogs over a screen: an action, an acknowledgement or silence, adding a host, the help."""

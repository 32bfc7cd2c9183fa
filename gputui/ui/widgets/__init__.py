"""Widgets and drawing helpers the screens and dialogs share: the fleet list, heat map, footer, replay bar, palettes."""

"""What the app owns and hands to its screens to read, drawn by none of it itself: the alert board."""

"""The Textual dashboard: reads the fleet store, never blocks on I/O."""

"""Recording the fleet's frames and replaying them (see gputui/record/format.py for the file)."""

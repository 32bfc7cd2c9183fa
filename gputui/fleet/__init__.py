"""Fleet state: the latest frame per host, connection state, and history."""

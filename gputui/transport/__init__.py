"""Sources of frames: a local child agent, simulated demo hosts (SSH and
replay follow), each turning a host entry into an async stream of frames."""

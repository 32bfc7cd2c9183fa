"""Simulated GPUs behind pynvml's own interface.

``SimNvml`` answers the NVML calls the agent makes with the same function
names, structures and ``pynvml.NVMLError`` subclasses, so that the demo, the
tests and the benchmarks run the agent's real code. Standard library and
``pynvml`` only: the simulator travels in the agent bundle.
"""

"""Slurm as the site sees it: jobs on GPUs, node states, reservations, read from the controller."""

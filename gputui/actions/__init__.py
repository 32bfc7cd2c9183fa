"""Guarded actions: policy, preview, confirmation and audit around every change."""

"""Backends: where tasks run (private). Each module ends with ``backend_class = X``."""

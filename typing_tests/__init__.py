"""Type-checked, never executed: see README.md."""

"""Backend-neutral front end of anypool (private)."""

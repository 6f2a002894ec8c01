"""anypool: run work concurrently the right way by default."""

__all__: tuple[str, ...] = ()

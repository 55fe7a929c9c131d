"""The local cloud: embedded AWS, pipeline engine, event router and endpoint hosting on loopback only."""

"""Titan: a cluster job scheduler built on ZeroMQ. See README.md and ARCHITECTURE.md."""

__version__ = "0.1.0"

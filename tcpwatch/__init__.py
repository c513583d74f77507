"""tcpwatch: what TCP is really doing under your services."""

__version__ = "0.1.0"

"""Benchmark scripts (quality, speed); each is also reachable through the ``autovoice`` CLI."""

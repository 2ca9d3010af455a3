"""The ``autovoice`` command line: the one place that ties engine, workers and studio together."""

"""Inference backends: each component runs as a :class:`~engine.backends.base.ComponentRunner`.

``torch`` (eager), ``onnxruntime`` and ``tensorrt``; ``auto`` picks per component among fresh artifacts.
"""

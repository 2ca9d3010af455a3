"""AutoVoice studio: the Gradio web app (convert, voices, engines, calibration, workers).

It talks only to Redis: jobs are enqueued by dotted path through :mod:`workers.enqueue`, their logs are
read from Redis Streams with the asyncio client, and results come back as blobs. Nothing here imports
torch, onnxruntime, tensorrt or the engine's model code (only the torch-free ``engine.config``).
"""

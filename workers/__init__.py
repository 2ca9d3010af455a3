"""AutoVoice job queue: RQ workers pinned to GPUs (or CPUs) on a shared Redis.

Client-side modules (:mod:`workers.enqueue`, :mod:`workers.status`, :mod:`workers.logs`,
:mod:`workers.blobs`, :mod:`workers.voices`, :mod:`workers.keys`) import neither torch nor the engine at
import time, so the studio can use them from an install without torch. Job code (:mod:`workers.jobs`) and
the worker process (:mod:`workers.worker`) import the engine inside functions.
"""

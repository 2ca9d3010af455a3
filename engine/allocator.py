"""Keep freed memory in the process, so every chunk does not fault its working memory back in.

A conversion allocates the same large tensors for every chunk and frees them again. glibc's malloc hands
a block above its mmap threshold back to the kernel when it is freed (and trims the heap's free top),
so the next chunk takes a page fault for every 4 KiB of it again. PyTorch's eager vocoder is the worst
case: on 2 cores an 8.6 s conversion took about 30,000 minor faults and 45-70 ms of system time, and ran
at about 125 ms instead of about 90 ms. ONNX Runtime plans its memory in its own arena and took none.

:func:`retain_freed_memory` raises the thresholds once per process: blocks up to 32 MiB come from the
heap, the heap grows 64 MiB at a time, and freed memory stays mapped up to 1 GiB. A process's resident
memory then stays near its peak instead of falling back between chunks. The peak is still set by the
chunk length, not the input's; in the benchmark PyTorch's rose from 535 to 590 MB and ONNX Runtime's did
not move.
A process started with its own malloc settings in the environment (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or ``glibc.malloc`` tunables) keeps them: the memory
benchmark, for one, maps every large block so that RSS follows the memory in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger(__name__)

# mallopt() parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20

ENVIRONMENT_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks (see the module docstring); True once applied.

    On a C library other than glibc this changes nothing and returns False (its allocator has its own
    policy), and neither does a process whose environment sets malloc's thresholds; both are logged
    once. Conversions are correct either way: only their speed depends on it.
    """
    global _applied
    if _applied is not None:
        return _applied
    chosen = [k for k in ENVIRONMENT_SETTINGS if os.environ.get(k)]
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        chosen.append("GLIBC_TUNABLES")
    if chosen:
        log.info("allocator: malloc settings from the environment (%s) are kept", ", ".join(chosen))
        _applied = False
        return False
    libc_name, _ = platform.libc_ver()
    path = ctypes.util.find_library("c") if libc_name == "glibc" else None
    if path is None:
        log.info("allocator: not glibc (%s); freed memory is left to the C library's own policy",
                 libc_name or "unknown")
        _applied = False
        return False
    mallopt = ctypes.CDLL(path).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    refused = [param for param, value in settings if mallopt(param, value) != 1]
    if refused:
        log.warning("allocator: glibc's mallopt refused parameter(s) %s; chunks may page-fault their "
                    "memory back in", refused)
    _applied = not refused
    return _applied

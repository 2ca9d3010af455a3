"""The engines table: per host and GPU model, the engines its last successful build made (from that build
job's result, which carries each artifact's manifest) and what its live workers have loaded right now.

Engines live on each worker host's disk, so the studio knows them only through Redis: build results
(kept for the retention period) and worker heartbeats (``engines``: loaded pipelines per component).
"""

from __future__ import annotations

import time
from typing import Any

import redis

from studio import jobs
from workers.enqueue import list_jobs
from workers.status import live_workers

COLUMNS = ["host / GPU", "component", "backend", "precision", "built at", "freshness", "parity error", "workers"]
RECENT_JOBS = 200
_QUALITY_HINTS = ("parity", "snr", "cents", "db", "err", "diff")  # also the order they are shown in


def _described(value: Any) -> list[dict[str, Any]]:
    """Dicts anywhere in ``value`` that name their ``component`` and ``backend`` (manifests)."""
    if isinstance(value, dict):
        if "component" in value and "backend" in value:
            return [value]
        return [a for v in value.values() for a in _described(v)]
    if isinstance(value, list):
        return [a for v in value for a in _described(v)]
    return []


def _listed(value: Any, backend: str | None = None, precision: str | None = None) -> list[dict[str, Any]]:
    """Entries of ``components`` mappings (name -> details) under a dict that names the ``backend``."""
    if isinstance(value, list):
        return [a for v in value for a in _listed(v, backend, precision)]
    if not isinstance(value, dict):
        return []
    backend = str(value.get("backend") or backend or "") or None
    precision = str(value.get("precision") or precision or "") or None
    comps = value.get("components")
    if isinstance(comps, dict) and backend and all(isinstance(v, dict) for v in comps.values()):
        return [{"component": name, "backend": backend, "precision": precision, **details}
                for name, details in comps.items()]
    return [a for v in value.values() for a in _listed(v, backend, precision)]


def artifacts(value: Any) -> list[dict[str, Any]]:
    """Every artifact described inside a build result.

    Manifests (dicts naming their ``component`` and ``backend``) are used when the result carries them;
    otherwise the ``components`` mapping of component name -> details that ``engine.build.build_engines``
    returns, whose entries inherit the enclosing backend and precision.
    """
    return _described(value) or _listed(value)


def _numbers(value: Any, path: str = "") -> list[tuple[str, float]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [(path, float(value))]
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _numbers(v, f"{path}.{k}" if path else str(k))]
    return []


def parity_text(art: dict[str, Any]) -> str:
    """The artifact's measured parity or quality figures (``snr_db=61.2, max_abs_error=0.002``), wherever they
    sit; the export's per-shape parity checks (``quality.parity``) read as their worst relative error against
    PyTorch."""
    pairs = [(k.removeprefix("quality."), v) for k, v in _numbers({k: v for k, v in art.items()
                                                                   if k not in ("seconds", "opset")})
             if any(h in k.lower() for h in _QUALITY_HINTS)]
    checks = [v for k, v in pairs if k.startswith("parity.")]
    rank = {k: min(i for i, h in enumerate(_QUALITY_HINTS) if h in k.lower()) for k, _ in pairs}
    others = [f"{k}={v:.3g}" for k, v in sorted(pairs, key=lambda p: rank[p[0]]) if not k.startswith("parity.")]
    return ", ".join(([f"rel. error vs PyTorch {max(checks):.2g}"] if checks else []) + others[:3 - bool(checks)])


def built_at(art: dict[str, Any], fallback: float | None) -> str:
    """When the artifact was built (UTC): its manifest's time, else the build job's end."""
    for key in ("created", "built_at", "built"):
        if art.get(key):
            return str(art[key]).replace("T", " ").rstrip("Z") + " UTC"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(fallback)) if fallback else ""


def latest_builds(conn: redis.Redis) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The newest finished build job per build queue, backend and precision, with its result (a later build
    of the same kind replaced the earlier one's folder; builds of other kinds still sit beside it)."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for info in list_jobs(conn, RECENT_JOBS):  # newest first
        if info.get("kind") != "build_engines" or info.get("status") != "finished":
            continue
        res = jobs.result(conn, str(info["job_id"]))
        key = (str(info.get("queue")), str(res.get("backend", "")), str(res.get("precision", "")))
        if key not in latest:
            latest[key] = info | {"result": res}
    return latest


def freshness(art: dict[str, Any], here: list[dict[str, Any]]) -> str:
    """Stale when the build's own check failed or the host's live workers serve another checkpoint than the
    one the artifact was made from (they would refuse to load it); else fresh, and whether it is loaded."""
    comp, kind = str(art["component"]), f"{art['backend']}/{art.get('precision', '')}"
    if art.get("fresh") is False:
        return f"stale: {art.get('stale_reason') or 'failed its check after the build'}"
    made_from = str(art.get("checkpoint_sha256") or "")
    serving = sorted({str(w.get("checkpoint_sha256")) for w in here if w.get("checkpoint_sha256")})
    if made_from and serving and made_from not in serving:
        return (f"stale: made from checkpoint {made_from[:12]}, the workers here serve "
                + ", ".join(s[:12] for s in serving) + "; rebuild")
    in_use = any(kind == (comps or {}).get(comp) for w in here for comps in (w.get("engines") or {}).values())
    return "fresh, in use" if in_use else "fresh (built)"


def rows(conn: redis.Redis) -> list[list[Any]]:
    """One row per (host/GPU, component, backend, precision) built, or loaded when nothing was built."""
    workers = live_workers(conn)
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for w in workers:
        by_queue.setdefault(str(w.get("build_queue") or ""), []).append(w)
    out: list[list[Any]] = []
    builds = latest_builds(conn)
    for (queue, _, _), build in sorted(builds.items()):
        res = build.get("result") or {}
        host = f"{res.get('host', queue)} / {res.get('gpu', '?')}"
        here = by_queue.get(queue, [])
        names = ", ".join(str(w.get("name")) for w in here) or "(no live worker)"
        for art in artifacts(res):
            out.append([host, str(art["component"]), str(art["backend"]), str(art.get("precision", "")),
                        built_at(art, build.get("ended_at")), freshness(art, here), parity_text(art), names])
    built_queues = {queue for queue, _, _ in builds}
    for queue, here in sorted(by_queue.items()):
        if queue in built_queues:
            continue
        for w in here:
            for pipeline, comps in (w.get("engines") or {}).items():
                for comp, what in (comps or {}).items():
                    backend, _, prec = str(what).partition("/")
                    out.append([f"{w.get('host', '?')} / {w.get('gpu', '?')}", comp, backend, prec, "",
                                f"loaded ({pipeline}), no build yet", "", str(w.get("name"))])
    return out


def build_backend_default(conn: redis.Redis) -> str:
    """TensorRT when any live worker has it installed, else ONNX Runtime."""
    has_trt = any(str(w.get("trt_version", "none")) not in ("none", "") for w in live_workers(conn))
    return "tensorrt" if has_trt else "onnxruntime"

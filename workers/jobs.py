"""Job functions, enqueued by dotted path (``workers.jobs.convert`` ...). Arguments and results are JSON.

Each is thin: fetch inputs from Redis, call the engine with the worker's loaded pipeline, report progress
and log lines, store outputs in Redis. Engine imports stay inside the functions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from workers import calibrations, keys, voices
from workers.context import JobContext
from workers.errors import VoiceNotFound, WorkerError
from workers.scratch import scratch_dir

OUTPUT_FORMATS = ("wav", "flac", "ogg")
F0_DECIMALS = 1
MAX_SPEAKERS = 16  # voices cycled through as the speaker input while calibrating


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, paths and tuples turned into plain JSON values."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def convert_options(options: dict[str, Any] | None) -> Any:
    """Validate the JSON conversion options into an engine ``ConvertOptions``."""
    from engine.errors import AudioInputError
    from engine.options import ConvertOptions, check_options

    opts = dict(options or {})
    unknown = sorted(set(opts) - {"transpose", "f0_method", "seed", "temperature", "sample_rate", "format"})
    if unknown:
        raise WorkerError(f"unknown conversion option(s): {', '.join(unknown)}")

    def number(key: str, kind: type) -> Any:
        value = opts.get(key)
        if value is None or (key == "transpose" and value == "auto"):
            return value
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise AudioInputError(f"{key} must be a number, not {value!r}") from None

    fmt = opts.get("format")
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        raise AudioInputError(f"output format {fmt!r} is not supported; use one of {', '.join(OUTPUT_FORMATS)}")
    transpose = number("transpose", float)
    result = ConvertOptions(transpose=0.0 if transpose is None else transpose, f0_method=opts.get("f0_method"),
                            seed=number("seed", int), temperature=number("temperature", float),
                            sample_rate=number("sample_rate", int), format=fmt)
    check_options(result)
    return result


def _voice(ctx: JobContext, spec: str | dict[str, Any], folder: Path) -> Any:
    """A voice spec -> engine profile: a name (Redis first, then this host's stored and built-in voices)
    or ``{"reference_blob": id}`` (embedded on the fly)."""
    from engine.audio import load_clip
    from engine.errors import VoiceError
    from engine.speaker import SAMPLE_RATE
    from engine.voices import MAX_REFERENCE_SECONDS, default_store, profile_from_clips

    if isinstance(spec, str):
        spec = {"name": spec}
    if spec.get("reference_blob"):
        path = ctx.fetch_input(str(spec["reference_blob"]), folder)
        ctx.say(f"voice: reference clip {path.name} (embedding it)")
        clip = load_clip(path, SAMPLE_RATE, MAX_REFERENCE_SECONDS)
        return profile_from_clips("reference", [clip], source="file")
    name = str(spec.get("name") or "")
    if not name:
        raise WorkerError("the job names no voice: give a voice name or a reference clip")
    try:
        profile = voices.load_profile(ctx.conn, name)
        ctx.say(f"voice: {name} (from Redis)")
        return profile
    except VoiceNotFound:
        pass
    try:
        profile = default_store(ctx.runtime.cfg).get(name)
    except VoiceError as exc:
        redis_names = [m["name"] for m in voices.list_meta(ctx.conn)]
        raise VoiceNotFound(f"{exc}; voices in Redis: {', '.join(redis_names) or 'none'}") from None
    ctx.say(f"voice: {name} ({profile.source})")
    return profile


def _output_name(input_name: str, fmt: str | None) -> str:
    stem, suffix = Path(input_name).stem or "output", Path(input_name).suffix.lstrip(".").lower()
    ext = fmt or (suffix if suffix in OUTPUT_FORMATS else "wav")
    return f"{stem}.converted.{ext}"


WAV_HEADER_BYTES = 44


def _check_output_fits(info: Any, opts: Any, out_name: str, max_bytes: int) -> None:
    """Refuse, before converting, a WAV output that would be too large to store (16-bit mono: its size is
    known in advance; FLAC and Ogg compress by an amount only the audio decides)."""
    if not out_name.endswith(".wav"):
        return
    rate = opts.sample_rate or info.sample_rate
    size = round(info.frames * rate / info.sample_rate) * 2 + WAV_HEADER_BYTES
    if size > max_bytes:
        raise WorkerError(f"the output would be {size / 2**20:.1f} MB of WAV ({info.duration:.0f} s at {rate} Hz), "
                          f"more than the limit of {max_bytes / 2**20:.0f} MB (jobs.max_blob_mb); ask for FLAC or "
                          "Ogg, or a lower sample rate")


def convert(input_blob: str, voice: str | dict[str, Any], options: dict[str, Any] | None = None,
            backend: str = "auto", precision: str = "fp32") -> dict[str, Any]:
    """Convert the audio in ``input_blob`` to ``voice``; the output is the blob ``<job id>-output``.

    Returns:
        ``output_blob``, ``output_name``, ``f0_blob`` (JSON: per-10-ms F0 before and after transpose),
        ``input_seconds``, ``sample_rate``, ``samples``, ``transpose``, ``source_median_f0``, ``chunks``,
        ``seconds``, ``rtf``, ``components``, ``worker``, ``trained``.
    """
    from engine.audio import probe

    ctx = JobContext.current()
    rt = ctx.runtime
    opts = convert_options(options)
    ctx.say(f"convert on worker {rt.worker_name} ({rt.host.host}, {rt.host.gpu})")
    with scratch_dir("job") as tmp:
        in_path = ctx.fetch_input(input_blob, Path(tmp) / "in")
        info = probe(in_path, rt.cfg.inference.max_input_seconds)  # refuse bad input before loading anything
        _check_output_fits(info, opts, _output_name(in_path.name, opts.format), rt.limits.max_blob_bytes)
        profile = _voice(ctx, voice, Path(tmp) / "voice")
        if ctx.should_stop():
            from engine.errors import Cancelled

            raise Cancelled("conversion cancelled before it started")
        converter = rt.converter(backend, precision, say=ctx.say)
        out_name = _output_name(in_path.name, opts.format)
        result = converter.convert_file(in_path, Path(tmp) / "out" / out_name, profile, opts,
                                        progress=ctx.progress, log_line=ctx.say, should_stop=ctx.should_stop)
        output_blob = ctx.put_output(result.output, "output", name=out_name)
        f0 = {"frame_rate": rt.cfg.audio.frame_rate,
              "source": [round(float(v), F0_DECIMALS) for v in (result.f0_source if result.f0_source is not None
                                                                else [])],
              "target": [round(float(v), F0_DECIMALS) for v in (result.f0_target if result.f0_target is not None
                                                                else [])]}
        f0_blob = ctx.put_bytes(json.dumps(f0).encode(), "f0", name="f0.json")
    ctx.say(f"output stored as blob {output_blob} ({out_name})")
    return jsonable({"output_blob": output_blob, "output_name": out_name, "f0_blob": f0_blob,
                     "input_seconds": result.input_seconds, "sample_rate": result.sample_rate,
                     "samples": result.samples, "transpose": result.transpose,
                     "source_median_f0": result.source_median_f0, "chunks": result.chunks,
                     "seconds": result.seconds, "rtf": result.rtf, "components": result.components,
                     "voice": profile.name, "worker": rt.worker_name, "trained": converter.runners.trained})


def create_voice(name: str, clip_blobs: list[str]) -> dict[str, Any]:
    """Embed reference clips into the voice ``name`` and store it in Redis (replacing one of that name)."""
    from engine.audio import load_clip
    from engine.speaker import SAMPLE_RATE
    from engine.voices import MAX_REFERENCE_SECONDS, default_store, profile_from_clips

    ctx = JobContext.current()
    default_store(ctx.runtime.cfg).check_new_name(name)
    if not clip_blobs:
        raise WorkerError(f"voice {name}: give at least one reference clip")
    with scratch_dir("voice") as tmp:
        clips = []
        for i, blob_id in enumerate(clip_blobs):
            path = ctx.fetch_input(blob_id, Path(tmp) / str(i))
            clips.append(load_clip(path, SAMPLE_RATE, MAX_REFERENCE_SECONDS))
            ctx.say(f"reference clip {i + 1}/{len(clip_blobs)}: {path.name}, {len(clips[-1]) / SAMPLE_RATE:.1f} s")
            ctx.progress("loading", i + 1, len(clip_blobs))
    profile = profile_from_clips(name, clips)
    voices.save_profile(ctx.conn, profile, clips, ctx.runtime.limits.max_blob_bytes)
    f0 = f"{profile.median_f0:.1f} Hz" if profile.median_f0 else "unvoiced"
    ctx.say(f"voice {name}: {profile.n_clips} clip(s), {profile.seconds:.1f} s, median F0 {f0}")
    return jsonable(profile.describe() | {"source": "redis"})


def calibrate(name: str) -> dict[str, Any]:
    """Record every component's inputs over the set ``name``'s audio; attach ``calibration.npz`` to the set.

    The speaker conditioning cycles through the voices in Redis and this host's stored voices.
    """
    from engine.calibration import make_calibration_set
    from engine.voices import default_store

    ctx = JobContext.current()
    cfg = ctx.runtime.cfg
    speakers = [voices.load_profile(ctx.conn, m["name"]) for m in voices.list_meta(ctx.conn)[:MAX_SPEAKERS]]
    speakers += default_store(cfg).profiles()[: max(MAX_SPEAKERS - len(speakers), 0)]
    with scratch_dir("calib") as tmp:
        folder = Path(tmp) / "audio"
        files = calibrations.write_audio(ctx.conn, name, folder)
        ctx.say(f"calibration set {name}: {len(files)} file(s), {len(speakers)} voice(s) for the speaker input")
        source = files[0] if len(files) == 1 and files[0].suffix.lower() == ".zip" else folder
        out = Path(tmp) / "calibration.npz"
        summary = jsonable(make_calibration_set(cfg, source, out, voices=speakers or None, log_line=ctx.say,
                                                progress=ctx.progress))
        summary.pop("output", None)  # a temporary path on the worker: meaningless elsewhere
        npz = out.read_bytes()
    calibrations.store_npz(ctx.conn, name, npz, summary)
    ctx.say(f"calibration set {name}: calibration.npz stored ({len(npz)} bytes)")
    return {"name": name, "summary": summary}


def build_engines(backend: str, precision: str, calibration: str | None = None) -> dict[str, Any]:
    """Build this host's engines (one build per host, GPU model and TensorRT version at a time)."""
    from engine.build import build_engines as run_build

    ctx = JobContext.current()
    rt = ctx.runtime
    host = rt.host
    limit = rt.limits.timeout("build_engines")
    lock = ctx.conn.lock(keys.build_lock(host.host, host.gpu, host.trt_version), timeout=limit,
                         blocking_timeout=limit, thread_local=False)
    ctx.say(f"build {backend}/{precision} on {host.host} ({host.gpu}, TensorRT {host.trt_version})")
    t0 = time.monotonic()
    if not lock.acquire():
        raise WorkerError(f"another engine build for {host.host}/{host.gpu} held the lock for too long")
    try:
        if time.monotonic() - t0 > 1.0:
            ctx.say(f"waited {time.monotonic() - t0:.0f} s for another build on this host to finish")
        with scratch_dir("build") as tmp:
            npz_path = None
            if calibration:
                npz_path = Path(tmp) / "calibration.npz"
                npz_path.write_bytes(calibrations.npz(ctx.conn, calibration))
                ctx.say(f"calibration: {calibration}")
            result = run_build(rt.cfg, backend, precision, calibration=npz_path, device=rt.cfg.runtime.device,
                               log_line=ctx.say, progress=ctx.progress)
        rt.engines_rebuilt()
    finally:
        try:
            lock.release()
        except Exception:  # the lock expired or Redis restarted: nothing left to release
            pass
    ctx.say(f"build finished in {time.monotonic() - t0:.1f} s")
    return jsonable({"host": host.host, "gpu": host.gpu, "trt_version": host.trt_version, "backend": backend,
                     "precision": precision, "calibration": calibration, "result": result,
                     "artifacts": built_artifacts(result, host.trt_version)})


def built_artifacts(result: dict[str, Any], trt_version: str) -> list[dict[str, Any]]:
    """What the studio's engines table shows of each artifact a build made, from the manifest written beside
    it: when it was made, its measured parity and quality figures, the checkpoint it was made from, and
    whether it passes the same freshness check the runners apply before loading it (or why not)."""
    from engine.errors import ArtifactError
    from engine.export.manifest import read_manifest, verify_artifact

    folder, sha, backend = Path(result["folder"]), str(result["checkpoint_sha256"]), str(result["backend"])
    out = []
    for component, summary in result["components"].items():
        try:
            m = read_manifest(folder, component)
        except ArtifactError as exc:  # the engines are in place already: report the artifact, do not fail the job
            out.append({"component": component, "backend": backend, "precision": summary.get("precision", ""),
                        "fresh": False, "stale_reason": str(exc)})
            continue
        try:
            verify_artifact(folder, component, sha, backends=(m.backend,),
                            tensorrt_version=trt_version if m.backend == "tensorrt" else None)
            fresh, why = True, ""
        except ArtifactError as exc:
            fresh, why = False, str(exc)
        out.append({"component": component, "backend": m.backend, "precision": m.precision, "created": m.created,
                    "quality": m.quality, "checkpoint_sha256": m.checkpoint_sha256, "notes": m.notes,
                    "fresh": fresh, "stale_reason": why})
    return out


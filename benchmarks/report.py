"""The benchmark's markdown tables and PNG plot, both made from its JSON alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COMPONENTS = ("content_encoder", "pitch_encoder", "flow_decoder", "mel_projection", "vocoder")
SHORT = {"content_encoder": "content", "pitch_encoder": "pitch", "flow_decoder": "flow", "mel_projection": "mel",
         "vocoder": "vocoder"}
RTF_TARGET = 0.25


def _f(value: Any, fmt: str = ".3f", none: str = "-") -> str:
    return none if value is None else format(value, fmt)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def machine_line(m: dict[str, Any]) -> str:
    gpu = f", GPU {m['gpu']['name']}" if m.get("gpu") else ", no GPU"
    load = m.get("load_average_start") or []
    end = m.get("load_average_end") or []
    v = m.get("versions", {})
    peak = m.get("matmul_peak") or {}
    return (f"{m.get('cpu')} ({m.get('cores')} cores, {', '.join(m.get('cpu_flags') or []) or 'no AVX2'}), "
            f"{m.get('threads')} thread(s) per backend{gpu}; torch {v.get('torch')}, onnxruntime "
            f"{v.get('onnxruntime')}, tensorrt {v.get('tensorrt')}; float32 matmul peak "
            f"{_f(peak.get('gflops'), '.1f')} GFLOP/s; load average {load[0] if load else '?'} at start, "
            f"{end[0] if end else '?'} at end ({'quiet' if m.get('quiet') else 'NOT quiet: figures are noisy'}); "
            f"{m.get('time_utc')}")


def results_table(data: dict[str, Any]) -> list[str]:
    header = ["backend", "precision used per component", "RTF", "RTF without F0", "speedup", "chunk ms",
              *(f"{SHORT[c]} ms" for c in COMPONENTS), "F0 ms", "peak MB", "F0 delta (cents)", "mel delta (dB)"]
    rows = []
    for r in data["results"]:
        comps = r["components"]
        used = {v.split("/")[1] for v in r.get("component_precisions", {}).values()}
        precision = r["precision"] if used == {r["precision"]} else ", ".join(
            f"{SHORT[c]} {v.split('/')[1]}" for c, v in r.get("component_precisions", {}).items())
        q = r.get("quality") or {}
        rows.append([r["label"], precision, _f(r.get("rtf")), _f(r.get("rtf_no_f0")),
                     _f(r.get("speedup"), ".2f") + "x" if r.get("speedup") else "-",
                     _f(r["chunk"]["median_ms"], ".0f"),
                     *(f"{comps[c]['median_ms']:.0f} ±{comps[c]['iqr_ms']:.0f}" for c in COMPONENTS),
                     _f(r["f0_extraction"]["median_ms"], ".0f"), _f(r.get("peak_mb"), ".0f"),
                     _f(q.get("f0_cents_mean"), ".1f"), _f(q.get("mel_distance_db"), ".2f")])
    return _table(header, rows)


def flops_table(data: dict[str, Any]) -> list[str]:
    hw = data.get("hardware") or {}
    flops = (hw.get("flops") or {}).get("components")
    if not flops:
        return []
    peak = (data["machine"].get("matmul_peak") or {}).get("gflops")
    labels = [r["label"] for r in data["results"]]
    header = ["component", "GFLOP per audio second", *(f"{lab} GFLOP/s (% of peak)" for lab in labels)]
    rows = []
    for c in COMPONENTS:
        cells = []
        for r in data["results"]:
            a = (r.get("achieved") or {}).get(c) or {}
            pct = f" ({a['percent_of_peak']:.0f}%)" if a.get("percent_of_peak") is not None else ""
            cells.append(_f(a.get("gflops_per_second"), ".1f") + pct)
        rows.append([c, _f(flops[c]["gflops_per_audio_second"], ".2f"), *cells])
    total = sum(f["gflops_per_audio_second"] for f in flops.values())
    rows.append(["**total**", _f(total, ".2f"), *["" for _ in labels]])
    lib = (data["machine"].get("matmul_peak") or {}).get("library", "")
    note = (f"Matmul peak: {_f(peak, '.1f')} GFLOP/s (float32 2048x2048, {data['machine']['threads']} thread(s), "
            f"the faster of PyTorch's and ONNX Runtime's GEMM: {lib}). FLOPs "
            f"counted by {hw['flops']['counter']} on the {hw['flops']['chunk_seconds']} s chunk.")
    return [*_table(header, rows), "", note]


def scaling_table(data: dict[str, Any]) -> list[str]:
    out = []
    for s in data.get("scaling") or []:
        if s.get("skipped"):
            out.append(f"Scaling ({s.get('label')}): skipped: {s['skipped']}")
            continue
        rows = [[_f(r["input_seconds"], ".0f"), _f(r["wall_seconds"], ".1f"), _f(r["rtf"]),
                 str(r["chunks"]), _f(r["rss_loaded_mb"], ".0f"), _f(r["peak_mb"], ".0f")] for r in s["rows"]]
        out += [f"Scaling, {s['label']}: RTF spread {_f(s.get('rtf_spread'), '.2f')}x (max/min), peak memory "
                f"{'+' if (s.get('peak_growth_mb') or 0) >= 0 else ''}{_f(s.get('peak_growth_mb'), '.0f')} MB "
                f"from shortest to longest", "",
                *_table(["input s", "wall s", "RTF", "chunks", "RSS loaded MB", "peak MB"], rows), ""]
    return out


def pool_table(data: dict[str, Any]) -> list[str]:
    p = data.get("pool")
    if not p:
        return []
    if p.get("skipped"):
        return [f"Worker pool: skipped: {p['skipped']}"]
    rows = [[str(r["workers"]), str(r["threads_per_worker"]), str(r["jobs"]), _f(r["wall_seconds"], ".1f"),
             _f(r["audio_seconds_per_second"], ".2f"), _f(r["jobs_per_minute"], ".1f"),
             _f(r["mean_job_seconds"], ".1f"), _f(r["mean_wait_seconds"], ".1f"),
             str(len(r["failed"]))] for r in p["rows"]]
    return [f"Worker pool ({p['backend']}/{p['precision']}, real redis-server and `autovoice worker --cpu` "
            f"processes, {p['jobs']} jobs of {_f(p.get('input_seconds'), '.1f')} s each per row):", "",
            *_table(["workers", "threads each", "jobs", "wall s", "audio s per s", "jobs/min", "mean job s",
                     "mean wait s", "failed"], rows)]


def chunk_seconds(data: dict[str, Any]) -> float:
    """The fixed chunk's actual length (the input's, when shorter than the configured chunk)."""
    return next((r["chunk_seconds"] for r in data["results"]), data["settings"]["chunk_seconds"])


def markdown(data: dict[str, Any]) -> str:
    lines = [f"Machine: {machine_line(data['machine'])}", "", f"Command: `{data.get('command', '')}`", "",
             f"Input: {data['input']['name']} ({data['input']['seconds']:.1f} s); fixed chunk "
             f"{chunk_seconds(data):g} s; {data['settings']['repeats']} timed runs after "
             f"{data['settings']['warmup']} warm-up; component figures are median ±IQR ms per chunk; RTF is the "
             f"median of {data['settings']['e2e_repeats']} whole-file conversions. The backends take turns, one "
             f"round each (a share of the chunk runs and one conversion with and one without F0), each in its own "
             f"process. Checkpoint "
             f"{'trained' if data['checkpoint']['trained'] else 'UNTRAINED (speed does not depend on training)'}.",
             "", *results_table(data), "",
             "Load average (1 min) before/after the interleaved measurement, which adds about one backend's "
             "thread count: " + ", ".join(f"{r['label']} {'/'.join(f'{x:.1f}' for x in r.get('load_average') or [])}"
                                          for r in data["results"]) + ".", "",
             "What the kernel did per whole-file conversion with F0 (median system CPU time, minor page faults; a "
             "backend that hands memory back and faults it in again shows here): " + ", ".join(
                 f"{r['label']} {r['end_to_end']['median_system_ms']:.1f} ms and "
                 f"{r['end_to_end']['median_minor_faults']:.0f}" for r in data["results"]) + ".", ""]
    for s in data.get("skipped") or []:
        lines.append(f"- skipped {s['label']}: {s['reason']}")
    if data.get("skipped"):
        lines.append("")
    lines += flops_table(data)
    lines.append("")
    lines += scaling_table(data)
    lines += pool_table(data)
    return "\n".join(lines).rstrip() + "\n"


def plot(data: dict[str, Any], path: str | Path) -> Path:
    """Three panels: per-component time on the chunk (stacked), RTF with and without F0, scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = data["results"]
    labels = [r["label"] for r in results]
    scaling = [s for s in data.get("scaling") or [] if not s.get("skipped")]
    fig, axes = plt.subplots(1, 3 if scaling else 2, figsize=(15 if scaling else 11, 4.2))
    ax = axes[0]
    bottom = [0.0] * len(results)
    for c in (*COMPONENTS, "f0"):
        values = [(r["f0_extraction"] if c == "f0" else r["components"][c])["median_ms"] for r in results]
        ax.bar(labels, values, bottom=bottom, label="F0 extraction" if c == "f0" else SHORT[c])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel(f"ms per {chunk_seconds(data):g} s chunk (median)")
    ax.set_title("Where the time goes")
    ax.legend(fontsize=7, loc="upper right", framealpha=0.6)
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    ax = axes[1]
    x = range(len(results))
    ax.bar([i - 0.2 for i in x], [r["rtf"] for r in results], 0.4, label="end to end")
    ax.bar([i + 0.2 for i in x], [r["rtf_no_f0"] for r in results], 0.4, label="without F0 extraction")
    ax.axhline(RTF_TARGET, color="red", linestyle="--", linewidth=1, label=f"target RTF {RTF_TARGET}")
    ax.set_xticks(list(x), labels, rotation=30, fontsize=8)
    ax.set_ylabel("real-time factor (lower is faster)")
    ax.set_title("Real-time factor")
    ax.legend(fontsize=8)
    if scaling:
        ax = axes[2]
        for s in scaling:
            secs = [r["input_seconds"] for r in s["rows"]]
            ax.plot(secs, [r["rtf"] for r in s["rows"]], marker="o", label=f"{s['label']} RTF")
        ax.set_xscale("log")
        lengths = sorted({r["input_seconds"] for s in scaling for r in s["rows"]})
        ax.set_xticks(lengths, [f"{v:g}" for v in lengths])
        ax.minorticks_off()
        ax.set_xlabel("input seconds")
        ax.set_ylabel("RTF")
        ax.set_ylim(bottom=0)
        twin = ax.twinx()
        for s in scaling:
            twin.plot([r["input_seconds"] for r in s["rows"]], [r["peak_mb"] for r in s["rows"]], marker="s",
                      linestyle=":", color="gray", label=f"{s['label']} peak MB")
        twin.set_ylabel("peak RSS (MB)")
        twin.set_ylim(bottom=0)
        ax.set_title("Scaling with input length")
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"AutoVoice speed: {data['machine'].get('cpu')}, {data['machine'].get('threads')} thread(s)",
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

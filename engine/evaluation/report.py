"""Summaries of evaluation records per system and target group, the issue's checks, and tables.

Every summary value is a mean over the group's clips (NaNs left out and counted in ``missing``), except
``f0_median_cents_max`` (the worst clip) and ``mcd_ratio_of_means`` (mean MCD over mean source MCD).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.evaluation.corpus import SEEN, UNSEEN
from engine.evaluation.runner import METRICS, PAIR_FIELDS

# The thresholds a trained model is held to (issue 3), checked per target group.
THRESHOLDS = {
    "f0_median_cents_max": 30.0,     # on every clip
    "voicing": 0.80,
    "sim_target": 0.85,
    "sim_gain": 0.0,                 # similarity to the target above similarity to the source
    "mcd_ratio_of_means": 0.8,
    "dnsmos_drop": 0.4,              # mean DNSMOS no more than this below the sources'
}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarize(records: list[dict[str, Any]], systems: tuple[str, ...]) -> dict[str, dict[str, dict[str, float]]]:
    """``{system: {group: {metric: value}}}`` over ``seen``, ``unseen`` and ``all`` targets."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for system in systems:
        out[system] = {}
        for group in (SEEN, UNSEEN, "all"):
            recs = [r for r in records if group == "all" or r["group"] == group]
            if not recs:
                continue
            rows = [r["systems"][system] for r in recs]
            s: dict[str, float] = {"n": float(len(recs))}
            for key in (*METRICS, "seconds"):
                s[key] = _mean([row[key] for row in rows])
            medians = [row["f0_median_cents"] for row in rows]
            s["f0_median_cents_max"] = float("nan") if any(not math.isfinite(v) for v in medians) else max(medians)
            for key in PAIR_FIELDS:
                s[key] = _mean([r[key] for r in recs])
            s["mcd_ratio_of_means"] = s["mcd"] / s["source_mcd"] if s["source_mcd"] > 0 else float("nan")
            s["missing"] = float(sum(1 for row in rows for k in METRICS if not math.isfinite(row[k])))
            out[system][group] = s
    return out


def checks(summary: dict[str, dict[str, dict[str, float]]], system: str = "autovoice") -> list[dict[str, Any]]:
    """The issue's thresholds for ``system`` per target group: ``{group, check, value, threshold, passed}``."""
    result = []
    for group in (SEEN, UNSEEN):
        s = summary.get(system, {}).get(group)
        if s is None:
            continue
        items = [
            ("median F0 error <= 30 cents on every clip", s["f0_median_cents_max"], THRESHOLDS["f0_median_cents_max"],
             s["f0_median_cents_max"] <= THRESHOLDS["f0_median_cents_max"]),
            ("voicing agreement >= 0.80", s["voicing"], THRESHOLDS["voicing"], s["voicing"] >= THRESHOLDS["voicing"]),
            ("similarity to target >= 0.85", s["sim_target"], THRESHOLDS["sim_target"],
             s["sim_target"] >= THRESHOLDS["sim_target"]),
            ("similarity gain (target - source) > 0", s["sim_gain"], THRESHOLDS["sim_gain"],
             s["sim_gain"] > THRESHOLDS["sim_gain"]),
            ("MCD to oracle <= 0.8 x the source's", s["mcd_ratio_of_means"], THRESHOLDS["mcd_ratio_of_means"],
             s["mcd_ratio_of_means"] <= THRESHOLDS["mcd_ratio_of_means"]),
            ("DNSMOS drop vs sources <= 0.4", s["source_dnsmos"] - s["dnsmos"], THRESHOLDS["dnsmos_drop"],
             s["source_dnsmos"] - s["dnsmos"] <= THRESHOLDS["dnsmos_drop"]),
        ]
        result += [{"group": group, "check": name, "value": value, "threshold": thr, "passed": bool(ok)}
                   for name, value, thr, ok in items]
    return result


COLUMNS = ("system", "targets", "n", "F0 med c (max)", "voicing", "sim->tgt", "sim->src", "gain",
           "DNSMOS (src)", "dur", "MCD dB (src)", "MCD ratio")


def _f(v: float, fmt: str = ".2f") -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, fmt)


def table_rows(summary: dict[str, dict[str, dict[str, float]]]) -> list[list[str]]:
    rows = []
    for system, groups in summary.items():
        for group in (SEEN, UNSEEN):
            s = groups.get(group)
            if s is None:
                continue
            rows.append([system, group, str(int(s["n"])),
                         f"{_f(s['f0_median_cents'], '.1f')} ({_f(s['f0_median_cents_max'], '.1f')})",
                         _f(s["voicing"]), _f(s["sim_target"]), _f(s["sim_source"]), _f(s["sim_gain"], "+.2f"),
                         f"{_f(s['dnsmos'])} ({_f(s['source_dnsmos'])})", _f(s["duration_ratio"], ".3f"),
                         f"{_f(s['mcd'])} ({_f(s['source_mcd'])})", _f(s["mcd_ratio_of_means"])])
    return rows


def text_table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """A fixed-width table for the terminal."""
    rows = [list(COLUMNS), *table_rows(summary)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    """The same table in GitHub markdown."""
    head = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(r) + " |" for r in table_rows(summary))])


LEGEND = (
    "Means over clips. F0 med c: median absolute F0 error in cents against the source's F0 moved by the\n"
    "transpose (Praat), with the worst clip in brackets. voicing: fraction of frames whose voiced flags\n"
    "agree with the source's. sim->tgt / sim->src: Resemblyzer cosine similarity of the output to the target\n"
    "voice's / source voice's sung references (clips of other songs); gain = tgt - src. DNSMOS: P.835\n"
    "overall (speechmos), sources' mean in brackets. dur: output/source length. MCD: mel-cepstral distortion\n"
    "(c1-c24, alpha 0.42, WORLD CheapTrick) to the target voice's time-aligned rendition of the same song,\n"
    "over frames voiced in both; the source's own MCD to it in brackets; MCD ratio = mean MCD / mean source MCD."
)


def markdown_report(summary: dict[str, dict[str, dict[str, float]]], header: dict[str, Any],
                    check_list: list[dict[str, Any]]) -> str:
    """A markdown section for the README: what was run, the table, its legend and the checks."""
    lines = ["## Quality evaluation", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += ["", markdown_table(summary), "", LEGEND.replace("\n", " "), ""]
    if check_list:
        lines += ["| targets | check (autovoice) | value | pass |", "|---|---|---:|---|"]
        lines += [f"| {c['group']} | {c['check']} | {_f(c['value'], '.3f')} | {'yes' if c['passed'] else 'NO'} |"
                  for c in check_list]
        lines.append("")
    return "\n".join(lines)


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities by None, recursively, so the JSON is standard."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value

"""Ratios, targets and tables for bench/controller_vs_upstream.py (pure: results dict in, text out).

A ratio is sealkit / upstream from the SAME run; each target (issue 17) is judged on it. The
tables are Markdown so they paste into docs/benchmarks.md as they are.
"""

from __future__ import annotations

import math
from typing import Any

Row = dict[str, Any]


def ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else float("nan")


def _verdict(value: float, limit: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return "met" if value <= limit else "missed"


def targets(res: dict[str, Any]) -> list[Row]:
    """Each target of issue 17 with its measured value; absent runs are left out."""
    out: list[Row] = []
    keys = {r["keys"]: r for r in res.get("keys", [])}
    if keys:
        # the 0.1x target is for 24 keys; a --quick run (1 and 2 keys) reports only the first
        for k, limit in ((min(keys), 0.5), (24, 0.1)):
            if k in keys:
                r = keys[k]["ratio_cpu_per_ss"]
                what = f"CPU per SealedSecret, {k} key(s)"
                out.append(_t(what, r, f"<= {limit}x", _verdict(r, limit)))
    for run in res.get("throughput", []):
        if run["n"] == 1000 or len(res.get("throughput", [])) == 1:
            r = run["ratio_wall"]
            out.append(_t(f"wall to converge {run['n']}", r, "<= 1.0x", _verdict(r, 1.0)))
    for st in res.get("startup", []):
        s = st["sealkit"]["ready_s"]
        out.append(_t("ready after start (s, sealkit)", s, "<= 2 s", _verdict(s, 2.0)))
    for run in res.get("throughput", []):
        if run["n"] >= 10000:
            r = run["ratio_peak_rss"]
            peak = run["sealkit"]["peak_rss_mb"]
            out.append(_t(f"peak RSS at {run['n']} vs upstream", r, "<= 1.5x", _verdict(r, 1.5)))
            out.append(_t(f"peak RSS at {run['n']} (MB)", peak, "<= 150 MB", _verdict(peak, 150)))
    return out


def _t(what: str, value: float, target: str, verdict: str) -> Row:
    return {"target": what, "value": value, "limit": target, "verdict": verdict}


def _f(x: Any, nd: int = 2) -> str:
    if isinstance(x, float):
        return f"{x:.{nd}f}" if math.isfinite(x) else "n/a"
    return str(x)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _load(r: Row) -> str:
    return f"{r['load'][0]:.1f}->{r['load'][1]:.1f}"


def tables(res: dict[str, Any]) -> str:
    """The human/Markdown report: one table per comparison, then the targets."""
    parts = []
    if res.get("throughput"):
        rows = []
        for run in res["throughput"]:
            for m, key in (
                ("Secrets written (partial if < N)", "secrets"),
                ("wall s (create -> all Secrets)", "wall_s"),
                ("controller CPU-s", "cpu_s"),
                ("CPU ms per SealedSecret", "cpu_per_ss_ms"),
                ("peak RSS MB (VmHWM)", "peak_rss_mb"),
                ("steady RSS MB (VmRSS)", "steady_rss_mb"),
            ):
                s, u = run["sealkit"][key], run["upstream"][key]
                rows.append([run["n"], m, s, u, ratio(s, u), _load(run)])
        parts.append(
            "Throughput (1 key, RSA-4096, 3 values each)\n\n"
            + _table(["N", "measure", "sealkit", "upstream", "ratio", "load 1m"], rows)
        )
    if res.get("keys"):
        rows = [
            [
                r["keys"],
                r["n"],
                r["sealkit"]["cpu_per_ss_ms"],
                r["upstream"]["cpu_per_ss_ms"],
                r["ratio_cpu_per_ss"],
                _load(r),
            ]
            for r in res["keys"]
        ]
        parts.append(
            "Unseal CPU per SealedSecret by key count (sealed by the oldest key)\n\n"
            + _table(["keys", "N", "sealkit ms", "upstream ms", "ratio", "load 1m"], rows)
        )
    if res.get("startup") or res.get("restart"):
        rows = []
        for st in res.get("startup", []):
            for m, key in (
                ("exec -> ready s", "ready_s"),
                ("CPU-s to ready", "cpu_s"),
                ("RSS at ready MB", "rss_mb"),
            ):
                s, u = st["sealkit"][key], st["upstream"][key]
                rows.append([m + " (empty)", s, u, ratio(s, u), _load(st)])
        for rs in res.get("restart", []):
            for m, key in (
                ("restart -> ready s", "ready_s"),
                ("restart -> first Secret s", "first_secret_s"),
            ):
                s, u = rs["sealkit"][key], rs["upstream"][key]
                rows.append([f"{m} ({rs['existing']} existing)", s, u, ratio(s, u), _load(rs)])
        parts.append(
            "Start-up and restart\n\n"
            + _table(["measure", "sealkit", "upstream", "ratio", "load 1m"], rows)
        )
    rows = [[t["target"], t["value"], t["limit"], t["verdict"]] for t in targets(res)]
    parts.append("Targets (issue 17)\n\n" + _table(["target", "value", "target", "verdict"], rows))
    return "\n\n".join(parts)


def all_ratios(res: dict[str, Any]) -> list[float]:
    """Every ratio computed, for --quick's check that all are finite and positive."""
    out = [r["ratio_cpu_per_ss"] for r in res.get("keys", [])]
    for run in res.get("throughput", []):
        out += [run["ratio_wall"], run["ratio_cpu"], run["ratio_peak_rss"]]
    for st in res.get("startup", []) + res.get("restart", []):
        out.append(st["ratio_ready"])
    for rs in res.get("restart", []):
        out.append(rs["ratio_first_secret"])
    return out

"""The text table of `tcpwatch report`: one line per connection, humanized."""

from __future__ import annotations

import humanize

from ..analysis.table import HALF_OPEN_FOLD, HALF_OPEN_STATE
from ..safe import inert


def _dur(s: float | None) -> str:
    """Durations the way a latency-minded reader scans them: us, ms, s, then humanized."""
    if s is None:
        return "-"
    if s < 0.001:
        return f"{s * 1e6:.0f}us"
    if s < 1:
        return f"{s * 1000:.1f}ms"
    if s < 120:
        return f"{s:.2f}s"
    return humanize.naturaldelta(s)


def _size(n: int | None) -> str:
    return "-" if n is None else humanize.naturalsize(n, binary=True, format="%.1f")


def _ep(e: dict, v6: bool) -> str:
    return f"[{e['addr']}]:{e['port']}" if v6 else f"{e['addr']}:{e['port']}"


COLUMNS = ("id", "client -> server", "state", "duration", "pkts c>s/s>c", "bytes c>s",
           "bytes s>c", "iRTT", "SRTT", "retrans", "dupACK", "zero-win")


def render(report: dict, limit: int | None = None) -> str:
    rows = []
    # a SYN flood or a scan is summarised per destination below, not listed attempt by attempt
    folded = {k for k, n in report["half_open"].items() if n >= HALF_OPEN_FOLD}
    listed = [f for f in report["flows"] if not (
        f["state"] == HALF_OPEN_STATE and _ep(f["server"], f["ip_version"] == 6) in folded)]
    for f in listed[:limit]:
        v6 = f["ip_version"] == 6
        c2s, s2c = f["c2s"], f["s2c"]
        zw = (c2s["window"]["zero_window_time"] or 0) + (s2c["window"]["zero_window_time"]
                                                          or 0)
        rows.append((
            str(f["id"]),
            inert(f"{_ep(f['client'], v6)} -> {_ep(f['server'], v6)}"),
            f["state"],
            _dur(f["duration"]),
            f"{c2s['packets']}/{s2c['packets']}",
            _size(c2s["bytes"]), _size(s2c["bytes"]),
            _dur(f["handshake"]["irtt"]),
            _dur(f["srtt"]),  # one definition: analysis.summary.flow_srtt
            str(f["resent"]),  # one definition: analysis.summary.flow_resent
            str(c2s["duplicate_acks"] + s2c["duplicate_acks"]),
            _dur(zw) if zw else "-",
        ))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(COLUMNS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(COLUMNS, widths))]
    for r in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    t = report["totals"]
    more = len(listed) - len(rows)
    if more > 0:
        lines.append(f"... {more} more flows (use --json, or --limit 0 for all)")
    span = (t["last"] - t["first"]) if t["first"] is not None else 0.0
    lines.append("")
    lines.append(
        f"{inert(report['source'])} ({report['engine']} engine): "
        f"{humanize.intcomma(t['packets'])} packets = TCP {humanize.intcomma(t['tcp_packets'])}"
        f" + non-TCP {humanize.intcomma(t['non_tcp'])} + undecodable "
        f"{humanize.intcomma(t['undecodable'])}; {_size(t['bytes'])} in {_dur(span)}; "
        f"dropped {humanize.intcomma(t['dropped'])} by the capture, "
        f"{humanize.intcomma(t['dropped_by_tcpwatch'])} by tcpwatch; "
        f"{humanize.intcomma(t['flows_seen'])} connections")
    ev = report["evicted"]
    if ev["flows"]:
        lines.append(f"{humanize.intcomma(ev['flows'])} connections past the flow cap were "
                     f"evicted (least recently active first) and are not listed; their "
                     f"{humanize.intcomma(ev['packets'])} packets are in the totals "
                     f"(--max-flows raises the cap)")
    if folded:
        lines.append("")
        lines.append("half-open attempts (SYN, no answer) by destination")
        for server, n in report["half_open"].items():
            if server in folded:
                lines.append(f"  {inert(server)}  {humanize.intcomma(n)}")
    if t["stopped_at"]:
        lines.append(f"stopped early at {t['stopped_at']}: {t['error']}")
    lines += _slowest(report)
    lines += _diagnosis(report)
    return "\n".join(lines)


PARTS = ("connect", "tls", "wait", "upload", "network", "think", "transfer")


def _label(x: dict) -> str:
    q, a = x["request"], x["response"]
    if x["protocol"] == "http" and q:
        s = f"{q.get('method')} {q.get('path')}"
        return s + (f" -> {a['status']}" if a.get("status") else "")
    if x["protocol"] == "redis" and q:
        return f"redis {q.get('command')}" + (f" -> {a['reply']}" if a.get("reply") else "")
    if x["protocol"] == "dns" and q:
        return f"dns {q.get('query')}" + (f" -> {a['rcode']}" if a.get("rcode") else "")
    return x["protocol"] or "data"


def _slowest(report: dict, n: int = 10) -> list[str]:
    exs = [(f["id"], x) for f in report["flows"] for x in f["exchanges"]
           if x["breakdown"]["total"] is not None]
    if not exs:
        return []
    exs.sort(key=lambda p: -p[1]["breakdown"]["total"])
    out = ["", f"slowest requests (of {len(exs)}): total = " + " + ".join(PARTS)]
    for fid, x in exs[:n]:
        b = x["breakdown"]
        parts = "  ".join(f"{k} {_dur(b[k])}" for k in PARTS if b[k])
        stalls = ", ".join(f"{k} {_dur(v)}" for k, v in b["stalls"].items())
        out.append(f"  flow {fid} #{x['index']} {inert(_label(x))[:60]}: {_dur(b['total'])}"
                   f"  ({parts})" + (f"  stalls: {stalls}" if stalls else ""))
    return out


def _diagnosis(report: dict) -> list[str]:
    found = [d for f in report["flows"] for d in f["diagnosis"]] + report["diagnosis"]
    if not found:
        return ["", "diagnosis: nothing found"]
    found.sort(key=lambda d: -d["lost"])
    out = ["", f"diagnosis ({len(found)} findings, most costly first)"]
    for d in found:
        where = f"flow {d['flow']}" if d["flow"] is not None else \
            f"flows {','.join(map(str, d['flows'][:8]))}{'...' if len(d['flows']) > 8 else ''}"
        frames = ",".join(str(e["frame"]) for e in d["evidence"][:5])
        out.append(f"  [{d['badge']}] {where}: {d['kind']}, lost {_dur(d['lost'])}"
                   f" (frames {frames})")
        out.append(f"      {d['explain']}")
        out.append(f"      -> {d['advice']}")
    return out


GROUP_COLUMNS = ("requests", "errors", "p50", "p90", "p99", "max", "think p50", "net p50",
                 "bytes", "new conn/req", "main cause")


def _group_cells(r: dict | None) -> tuple:
    if r is None:
        return ("-",) * len(GROUP_COLUMNS)
    cause = f"{r['badge']} {_dur(r['lost'])}" if r["cause"] else "-"
    return (humanize.intcomma(r["requests"]), humanize.intcomma(r["errors"]), _dur(r["p50"]),
            _dur(r["p90"]), _dur(r["p99"]), _dur(r["max"]), _dur(r["think_p50"]),
            _dur(r["network_p50"]), _size(r["bytes"]), f"{r['churn']:.2f}", cause)


def render_groups(report: dict, by: str, limit: int | None = None) -> str:
    """`report --by service|endpoint|process`: one line per group, slowest p99 first (the
    same rows as the JSON's services / endpoints / processes and the dashboard's views)."""
    rows: list[tuple] = []
    if by == "process":
        head: tuple = ("process", "role", *GROUP_COLUMNS)
        for p in report["processes"]:
            for role in ("served", "sent"):
                if p[role] is not None:
                    rows.append((inert(p["name"]), role, *_group_cells(p[role])))
    else:
        key = "services" if by == "service" else "endpoints"
        head = (by, *GROUP_COLUMNS) if by == "service" else ("service", "endpoint",
                                                              *GROUP_COLUMNS)
        for r in report[key]:
            names = (inert(r["name"]),) if by == "service" else (
                inert(r["service"] or "other"), inert(r["name"]))
            rows.append((*names, *_group_cells(r)))
    shown = rows[:limit]
    widths = [max(len(h), *(len(r[i]) for r in shown)) if shown else len(h)
              for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    for r in shown:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more (use --json, or --limit 0 for all)")
    if not rows:
        lines.append("(no requests)" if by != "process" or report["source"].startswith(
            "interface") else "(no local processes: a capture file has none; use -i)")
    lines.append("")
    lines.append(f"{humanize.intcomma(report['requests_counted'])} requests; times: p50/p90/"
                 "p99 within 1% (DDSketch); think = the server's time, net = one round trip; "
                 "new conn/req = connections opened per request (1.00: no reuse)")
    return "\n".join(lines)

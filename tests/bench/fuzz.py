"""Fuzz the decoder, the capture reader and the trackers at scale (not part of CI).

    python tests/bench/fuzz.py [--inputs 1000000] [--seed 1] [--crashes DIR]

Frames come from the real captures in ../shared/pcaps. Each input is one frame mutated at
random (bytes overwritten, cut short, bytes inserted or deleted, two frames spliced); it is
decoded for every link type we support, and what decodes is fed to a flow table whose
connections are summarised and diagnosed every 20,000 inputs. One input in 500 is instead a
whole small capture file with damage, read by the pcap/pcapng reader. Any exception other
than the typed ones (UserError from the reader) is a crash: counted, and its input saved
under --crashes if given. Prints the figures for the closing note.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tcpwatch.analysis.diagnosis import diagnose_capture  # noqa: E402
from tcpwatch.analysis.summary import flow_summary  # noqa: E402
from tcpwatch.analysis.table import FlowTable  # noqa: E402
from tcpwatch.capture.decode import NOT_TCP, SUPPORTED_LINKS, decode  # noqa: E402
from tcpwatch.capture.fast import iter_stream  # noqa: E402
from tcpwatch.capture.pcapio import CaptureFormatError, CaptureTruncated, Reader  # noqa: E402
from tcpwatch.capture.record import CaptureStats  # noqa: E402
from tcpwatch.errors import UserError  # noqa: E402

PCAPS = ROOT.parent / "shared" / "pcaps"


def corpus(limit_per_file: int = 4000) -> tuple[list[tuple[int, bytes]], list[bytes]]:
    frames, files = [], []
    for path in sorted(PCAPS.glob("*.pcap*")):
        try:
            with open(path, "rb") as f:
                r = Reader(f)
                n = 0
                for fr in r:
                    frames.append((fr.link, fr.data))
                    n += 1
                    if n >= limit_per_file:
                        break
        except (CaptureFormatError, CaptureTruncated, OSError):
            pass
        if path.stat().st_size < 200_000:
            files.append(path.read_bytes())
    return frames, files


def mutate(rnd: random.Random, data: bytes, other: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.random()
        if op < 0.45 and b:  # overwrite bytes, biased to the headers
            for _ in range(rnd.randint(1, 8)):
                i = min(len(b) - 1, int(rnd.expovariate(1 / 40)))
                b[i] = rnd.getrandbits(8)
        elif op < 0.6:  # cut short
            del b[rnd.randint(0, len(b)):]
        elif op < 0.75:  # insert
            i = rnd.randint(0, len(b))
            b[i:i] = rnd.randbytes(rnd.randint(1, 16))
        elif op < 0.9 and b:  # delete
            i = rnd.randint(0, len(b) - 1)
            del b[i:i + rnd.randint(1, 16)]
        else:  # splice with another frame
            i = rnd.randint(0, len(b))
            b[i:] = other[rnd.randint(0, len(other)):]
    return bytes(b)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crashes", type=Path, help="save crashing inputs in this directory")
    a = ap.parse_args()
    frames, files = corpus()
    if not frames:
        print(f"no captures under {PCAPS}", file=sys.stderr)
        return 2
    rnd = random.Random(a.seed)
    links = sorted(SUPPORTED_LINKS)
    counts = dict(inputs=0, records=0, not_tcp=0, undecodable=0, files=0, file_errors=0,
                  crashes=0, summaries=0)
    table = FlowTable(max_flows=2000)
    first_crash = None
    t0 = time.perf_counter()
    for i in range(a.inputs):
        counts["inputs"] += 1
        data = b""
        try:
            if i % 20_000 == 19_999:
                flows = list(table.flows.values())
                for fl in flows:
                    flow_summary(fl)
                    counts["summaries"] += 1
                diagnose_capture(flows)
            if files and i % 500 == 499:
                counts["files"] += 1
                blob = mutate(rnd, rnd.choice(files), rnd.choice(frames)[1])
                st = CaptureStats()
                try:
                    for rec in iter_stream(io.BytesIO(blob), st, "fuzz"):
                        table.feed(rec)
                except UserError:
                    counts["file_errors"] += 1
                continue
            link, data = rnd.choice(frames)
            if rnd.random() < 0.1:
                link = rnd.choice(links)
            data = mutate(rnd, data, rnd.choice(frames)[1])
            rec = decode(link, data, len(data), 1_700_000_000_000_000_000 + i * 1000, i + 1)
            if rec.__class__ is int:
                counts["not_tcp" if rec == NOT_TCP else "undecodable"] += 1
                continue
            counts["records"] += 1
            if rnd.random() < 0.05:  # the clock steps back now and then
                rec.ts -= rnd.randint(0, 5_000_000_000)
            table.feed(rec)
        except Exception:  # noqa: BLE001 - that is what we are counting
            counts["crashes"] += 1
            if first_crash is None:
                first_crash = traceback.format_exc()
            if a.crashes is not None:
                a.crashes.mkdir(parents=True, exist_ok=True)
                (a.crashes / f"crash-{i}.bin").write_bytes(data)
    dt = time.perf_counter() - t0
    print(f"frames in corpus: {len(frames):,} from {len(files)} small files + "
          f"{len(list(PCAPS.glob('*.pcap*')))} captures")
    for k, v in counts.items():
        print(f"{k:>12}: {v:,}")
    print(f"{'flows':>12}: {table.next_id:,} ({len(table.flows):,} kept, "
          f"{table.evicted.flows:,} evicted)")
    print(f"{'time':>12}: {dt:.1f} s ({counts['inputs'] / dt:,.0f} inputs/s)")
    if first_crash:
        print(first_crash, file=sys.stderr)
    return 1 if counts["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())

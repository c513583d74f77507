"""The per-packet core is compiled by mypyc at install time (setup.py) from the same source
files. These tests check that the installed build is the compiled one, that it was built from
the sources as they are now (an editable install keeps the built modules beside the sources,
and a built module shadows an edited .py until `pip install -e .` runs again), and that the
pure-Python fallback gives byte-identical reports."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from oracle import SHARED

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "tcpwatch"
PURE = os.environ.get("TCPWATCH_PURE") == "1"
CORE = ["tcpwatch.capture.record", "tcpwatch.capture.decode", "tcpwatch.capture.pcapio",
        "tcpwatch.capture.stream", "tcpwatch.capture.ekfields", "tcpwatch.analysis.flow",
        "tcpwatch.analysis.table", "tcpwatch.analysis.exchange", "tcpwatch.analysis.direction"]


@pytest.mark.skipif(PURE, reason="TCPWATCH_PURE=1: installed without compiling")
def test_core_is_compiled():
    import importlib
    for name in CORE:
        mod = importlib.import_module(name)
        assert mod.__file__.endswith(".so"), f"{name} is not compiled: {mod.__file__}"


def test_compiled_modules_are_current():
    stale = []
    for so in PKG.rglob("*.so"):
        py = so.parent / (so.name.split(".")[0] + ".py")
        if py.exists() and py.stat().st_mtime > so.stat().st_mtime:
            stale.append(str(py.relative_to(ROOT)))
    assert not stale, f"edited after the last build, run `pip install -e .`: {stale}"


def test_pure_python_gives_identical_reports(tmp_path):
    pure = tmp_path / "pure"
    shutil.copytree(PKG, pure / "tcpwatch", ignore=shutil.ignore_patterns("*.so",
                                                                         "__pycache__"))
    captures = [["--demo"]]
    for name in ("tcp_retransmissions.pcapng", "tls.pcap", "tcp_zerowindowrecovery.pcapng"):
        if (SHARED / name).exists():
            captures.append(["-r", str(SHARED / name)])

    def report(args, path):
        p = subprocess.run([sys.executable, "-c", "import sys, tcpwatch.capture.decode as d;"
                            "print(d.__file__, file=sys.stderr);"
                            "from tcpwatch.cli import main; sys.exit(main())",
                            "report", "--json", *args], capture_output=True, text=True,
                           cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(path)),
                           timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout, p.stderr.splitlines()[0]

    for args in captures:
        out_pure, where = report(args, pure)
        assert where.endswith("decode.py")  # the copy without built modules
        out_built, _ = report(args, ROOT)
        pure_rep, built_rep = json.loads(out_pure), json.loads(out_built)
        assert pure_rep.pop("source").endswith(built_rep.pop("source").split("/")[-1])
        assert pure_rep == built_rep, args  # every number, to the last float digit
        assert pure_rep["flows"] and pure_rep["totals"]["tcp_packets"] > 0

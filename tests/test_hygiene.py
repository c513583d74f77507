"""Architecture rules, enforced: the core runs without Textual, and no layer imports upward."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "tcpwatch"
# layer -> the tcpwatch modules it may import
ALLOWED = {
    "capture": {"capture", "errors"},
    "analysis": {"analysis", "capture.record"},
    "report": {"report", "analysis", "capture", "errors", "safe", "viewfilter"},
    # the live-analysis thread and the process map: no UI
    "monitor.py": {"analysis", "capture", "procmap", "errors", "viewfilter"},
    # the dashboard's capture process and its proxy: the monitor, no UI
    "worker.py": {"monitor", "capture", "procmap", "analysis"},
    "viewfilter.py": set(),
    "procmap.py": set(),
    "ui": {"ui", "monitor", "analysis", "capture", "errors", "safe", "procmap"},
}


def assert_loads_none(code: str) -> None:
    """Run `code` in a fresh interpreter; it prints the banned modules it found loaded."""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=PKG.parent)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "LOADED []" in p.stderr


def test_core_imports_and_runs_without_textual():
    code = ("import sys, tcpwatch.capture.fast, tcpwatch.capture.session, "
            "tcpwatch.analysis.table, tcpwatch.analysis.summary, tcpwatch.report.run, "
            "tcpwatch.report.text, tcpwatch.cli\n"
            "from tcpwatch.cli import main\n"
            "rc = main(['report', '--demo', '--json'])\n"
            "assert rc == 0, rc\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('textual', 'pyshark', 'psutil', 'rich'))\n"
            "print('LOADED', bad, file=sys.stderr)\n"
            "assert not bad, bad\n")
    assert_loads_none(code)


def test_monitor_runs_without_textual():
    """The live-analysis thread (what the dashboard reads) never loads the UI toolkit."""
    code = ("import sys, time\n"
            "from tcpwatch.capture.session import Capture\n"
            "from tcpwatch.monitor import Monitor\n"
            "from tcpwatch.cli import demo_capture\n"
            "m = Monitor(Capture('fast', file=demo_capture())).start()\n"
            "for _ in range(100):\n"
            "    time.sleep(0.05)\n"
            "    if m.latest is not None and m.latest.done: break\n"
            "m.stop()\n"
            "assert m.latest.flows_total == 12, m.latest\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
            "print('LOADED', bad, file=sys.stderr)\n")
    assert_loads_none(code)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG).with_suffix("")
    here = list(rel.parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
            found.add(mod)
            if not node.module:
                found.update(".".join(base + [a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("tcpwatch"):
            found.add(node.module.removeprefix("tcpwatch").lstrip("."))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("tcpwatch."):
                    found.add(a.name.removeprefix("tcpwatch."))
    return found


def test_no_layer_imports_upward():
    checked = 0
    for layer, allowed in ALLOWED.items():
        paths = [PKG / layer] if layer.endswith(".py") else (PKG / layer).glob("*.py")
        for path in paths:
            for mod in _imports(path):
                assert any(mod == a or mod.startswith(a + ".") for a in allowed), \
                    f"{path.relative_to(PKG)} imports tcpwatch.{mod}"
            checked += 1
    assert checked >= 22


def test_analysis_has_no_io_threads_or_clocks():
    banned = {"time", "threading", "socket", "subprocess", "asyncio", "os", "datetime"}
    for path in (PKG / "analysis").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module.split(".")[0]]
            assert not banned & set(names), f"{path.name} imports {names}"

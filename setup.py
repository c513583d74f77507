"""Build: tcpwatch is pure Python; its per-packet core is also compiled with mypyc when it can be
(a C compiler and the Python headers, which pip's build environment pairs with mypy). The
compiled modules are the same source files, so both run the same code; the pure-Python ones
stay the fallback. TCPWATCH_PURE=1 at install time skips the compilation."""

import os
import shutil
import sysconfig

from setuptools import setup

# the modules every packet goes through: decoding, the flow table and its trackers
CORE = [
    "tcpwatch/capture/record.py",
    "tcpwatch/capture/decode.py",
    "tcpwatch/capture/pcapio.py",
    "tcpwatch/capture/stream.py",
    "tcpwatch/capture/ekfields.py",
    *sorted(f"tcpwatch/analysis/{n}" for n in os.listdir("tcpwatch/analysis") if n.endswith(".py")),
]


def core_extensions() -> list:
    if os.environ.get("TCPWATCH_PURE") == "1":
        print("tcpwatch: TCPWATCH_PURE=1: pure Python, not compiled")
        return []
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        print(f"tcpwatch: no C compiler ({cc}): pure Python, not compiled")
        return []
    if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        print("tcpwatch: no Python headers (Debian: python3-dev): pure Python, not compiled")
        return []
    from mypyc.build import mypycify

    return mypycify(CORE, opt_level="3", group_name="tcpwatch_core")


setup(ext_modules=core_extensions())

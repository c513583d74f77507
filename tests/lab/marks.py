"""pytest marks for the tests that start the lab's real servers (backends.py): each skips with
the reason when what it needs is not installed (bash .ci/setup installs everything)."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
from conftest import NEED_TSHARK

from . import backends


def need(*progs: str) -> pytest.MarkDecorator:
    missing = [p for p in progs if shutil.which(p) is None]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed "
                              "(bash .ci/setup installs it)")


# every lab test: root (servers, tcpdump), tcpdump and tshark
LAB = [NEED_TSHARK, pytest.mark.timeout(120),
       pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tcpdump, servers)"),
       need("tcpdump")]
NEED_PG = pytest.mark.skipif(backends.pg_bindir() is None or shutil.which("setpriv") is None,
                             reason="PostgreSQL (postgresql) or setpriv not installed")
NEED_MARIADB = need("mariadbd", "mariadb-install-db", "mariadb", "mysqlslap")
NEED_NGINX = need("nginx", "nghttp", "curl")
NEED_GRPC = pytest.mark.skipif(importlib.util.find_spec("grpc") is None,
                               reason="grpcio not installed in the venv")

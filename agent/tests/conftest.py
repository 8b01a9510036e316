"""Fixtures of the agent's tests: the tests' CA, the fake portal (the one
seam, see helpers.FakePortal) and a real nginx."""

from __future__ import annotations

import pytest
from testbed import certs
from testbed.nginx import NginxServer
from testbed.ports import free_port

from .helpers import NAME, FakePortal


@pytest.fixture(scope="session")
def ca():
    """A CA of the tests: ``(key, certificate)``; it issues the portal's TLS
    certificate and the certificates the agent installs."""
    return certs.make_ca("fujissl-agent test CA")


@pytest.fixture
def portal(tmp_path, ca):
    server = FakePortal(tmp_path / "portal", *ca)
    yield server
    server.stop()


@pytest.fixture
def nginx(tmp_path):
    """A real nginx on 127.0.0.1 serving a self-signed www.example.test."""
    server = NginxServer(tmp_path / "nginx", address="127.0.0.1", http_port=free_port(),
                         tls_port=free_port(), server_name=NAME)
    server.start()
    yield server
    server.stop()

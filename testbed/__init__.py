"""Real peers on loopback for the portal's tests.

Each module starts one kind of daemon the portal talks to in production:
``bind`` (DNS and RFC 2136 updates), ``pebble`` (ACME CA), ``sshd`` and
``nginx`` (composed into target hosts by ``hosts``), ``mail`` (Exim and
Dovecot, mail servers with STARTTLS). ``fixtures`` is the
pytest plugin that wires them together; load it from the root conftest with
``pytest_plugins = ["testbed.fixtures"]``.

Everything listens on 127.0.0.0/8 only, on ports chosen free at start-up, with
its files in pytest's temporary folders, and is stopped at session end.
"""

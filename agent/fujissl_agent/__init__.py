"""fujissl-agent: installs the certificates of a FujiSSL portal on the server it
runs on, asking the portal for work (docs/agent-protocol.md in the portal's
repository). Python standard library only; ``openssl`` for keys made here."""

__version__ = "1.0.0"

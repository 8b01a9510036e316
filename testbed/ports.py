"""Free loopback ports, and the check that something listens on one."""

import socket

# Ports handed out in this process: a port is free again as soon as its probe
# socket closes, so remember it to never hand the same one to two daemons.
_handed_out: set[tuple[str, int]] = set()


def _bindable(address: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
        return True


def free_port(address: str = "127.0.0.1", *, udp_too: bool = False,
              also: tuple[str, ...] = ()) -> int:
    """A TCP port nobody uses at ``address`` (the kernel's pick for port 0).

    ``udp_too`` also requires the same UDP port to be free (for DNS); ``also``
    requires the port free (TCP, and UDP with ``udp_too``) at those addresses too.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
            port = probe.getsockname()[1]
        if (address, port) in _handed_out:
            continue
        if udp_too and not _bindable(address, port, socket.SOCK_DGRAM):
            continue
        if not all(_bindable(other, port, socket.SOCK_STREAM)
                   and (not udp_too or _bindable(other, port, socket.SOCK_DGRAM))
                   for other in also):
            continue
        _handed_out.add((address, port))
        return port


def port_open(address: str, port: int) -> bool:
    """True when a TCP connection to ``address:port`` is accepted."""
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False

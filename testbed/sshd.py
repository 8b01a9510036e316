"""OpenSSH sshd: how the portal reaches a target host to deploy certificates."""

import os
import socket
from pathlib import Path

from . import certs
from .ports import free_port
from .tools import Daemon, require

# sshd, started as root, refuses to run without its privilege-separation
# directory (the system's sshd creates it only when it runs).
_PRIVSEP_DIR = Path("/run/sshd")


class SshServer:
    """``sshd -D`` on ``address:port`` letting in ``root`` with one client key.

    Its own config, host key and pid file (all in ``directory``) keep it apart
    from the system's sshd.
    """

    def __init__(self, directory: Path, address: str):
        self.binary = require("sshd", "openssh-server")
        directory.mkdir(parents=True, exist_ok=True)
        self.address, self.port = address, free_port(address)
        self.host_key_path = directory / "ssh_host_ed25519_key"
        self.client_key_path = directory / "client_key"
        self.client_key_pem, client_public = certs.ssh_keypair("testbed-client")
        certs.write_private(self.client_key_path, self.client_key_pem)
        authorized_keys = directory / "authorized_keys"
        authorized_keys.write_text(client_public + "\n")
        self.new_host_key()
        config = directory / "sshd_config"
        config.write_text(f"""\
Port {self.port}
ListenAddress {address}
HostKey {self.host_key_path}
AuthorizedKeysFile {authorized_keys}
PasswordAuthentication no
KbdInteractiveAuthentication no
PidFile {directory}/sshd.pid
# pytest's temp folders are not laid out the way StrictModes wants.
StrictModes no
UsePAM no
LogLevel VERBOSE
Subsystem sftp internal-sftp
# bash started by sshd reads ~/.bashrc; this machine's root has one that runs
# pyenv init, ~0.1 s of CPU for every remote command. A stock host has none:
# with SHLVL set, bash is not the top-level shell and skips it.
SetEnv SHLVL=1
""")
        # sshd re-executes itself, so it needs its absolute path and config.
        argv = [self.binary, "-D", "-f", str(config), "-E", str(directory / "sshd.log")]
        self.daemon = Daemon(f"sshd {address}:{self.port}", argv, directory / "sshd.log")

    def new_host_key(self) -> None:
        """Write a fresh host key (takes effect at the next start)."""
        private, self.host_public_key = certs.ssh_keypair("testbed-host")
        certs.write_private(self.host_key_path, private)
        self.host_key_fingerprint = certs.ssh_fingerprint(self.host_public_key)

    def start(self) -> None:
        if os.geteuid() == 0:
            _PRIVSEP_DIR.mkdir(exist_ok=True)
        self.daemon.start()
        self.daemon.wait_until(self._greets, f"greeting on {self.address}:{self.port}")

    def stop(self) -> None:
        self.daemon.stop()

    def _greets(self) -> bool:
        with socket.create_connection((self.address, self.port), timeout=2) as conn:
            return conn.recv(64).startswith(b"SSH-")

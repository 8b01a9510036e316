"""Mail servers that switch to TLS on STARTTLS: Exim (SMTP) and Dovecot (IMAP,
POP3), each serving a certificate of a testbed CA of its own.

Both run as their packages' unprivileged users (Debian-exim, dovecot), so
their files live in a folder of their own under the system's temporary folder,
owned by that user: pytest's folders are readable by root only.
"""

import hashlib
import pwd
import shutil
import socket
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from . import certs
from .ports import free_port
from .tools import Daemon, require

NAME = "mail.example.test"


class _MailServer:
    """A folder owned by ``user`` holding a certificate for ``NAME`` (and
    127.0.0.1) signed by a CA of its own (``ca_pem``, to trust in a test)."""

    def __init__(self, user: str, address: str):
        self.address = address
        self.directory = Path(tempfile.mkdtemp(prefix=f"testbed-{user}-"))
        ca_key, ca = certs.make_ca("Testbed Mail CA")
        key, leaf = certs.make_leaf(ca_key, ca, dns_names=[NAME], ip_addresses=[address])
        self.ca_pem = certs.cert_pem(ca)
        self.leaf_sha256 = _sha256(leaf)
        self.key_path, self.chain_path = self.directory / "key.pem", self.directory / "chain.pem"
        certs.write_private(self.key_path, certs.key_pem(key))
        self.chain_path.write_text(certs.cert_pem(leaf) + self.ca_pem)
        self.user = pwd.getpwnam(user)

    def _own(self) -> None:
        for path in [self.directory, *self.directory.rglob("*")]:
            shutil.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _answers(self, port: int, greeting: bytes) -> bool:
        with socket.create_connection((self.address, port), timeout=2) as conn:
            return conn.recv(256).startswith(greeting)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _sha256(certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


class EximServer(_MailServer):
    """Exim 4 in the foreground (``-bdf``), accepting no mail: ``starttls_port``
    offers STARTTLS, ``plain_port`` does not (``tls_advertise_hosts`` by port),
    and ``refusing_port`` offers it but answers it with an error, as Exim does
    when its certificate file cannot be read (``tls_certificate`` by port)."""

    def __init__(self, address: str = "127.0.0.1"):
        self.binary = require("exim4", "exim4-daemon-light")
        super().__init__("Debian-exim", address)
        self.starttls_port, self.plain_port = free_port(address), free_port(address)
        self.refusing_port = free_port(address)
        (self.directory / "spool").mkdir()
        (self.directory / "log").mkdir()
        conf = self.directory / "exim.conf"
        conf.write_text(f"""\
primary_hostname = {NAME}
spool_directory = {self.directory}/spool
log_file_path = {self.directory}/log/%slog
pid_file_path = {self.directory}/exim.pid
local_interfaces = {address}
daemon_smtp_ports = {self.starttls_port} : {self.plain_port} : {self.refusing_port}
tls_advertise_hosts = ${{if eq{{$received_port}}{{{self.plain_port}}}{{}}{{*}}}}
tls_certificate = ${{if eq{{$received_port}}{{{self.refusing_port}}}\
  {{{self.directory}/missing.pem}}{{{self.chain_path}}}}}
tls_privatekey = {self.key_path}
acl_smtp_rcpt = refuse_all
begin acl
refuse_all:
  deny
""")
        self._own()
        # Exim reads a configuration given with -C only when root owns it; it
        # then gives up root and runs as its own user.
        shutil.chown(conf, "root", "root")
        log = self.directory / "exim.out"
        self.daemon = Daemon(f"exim {address}", [self.binary, "-C", str(conf), "-bdf"], log)

    def start(self) -> None:
        self.daemon.start()
        for port in (self.starttls_port, self.plain_port, self.refusing_port):
            self.daemon.wait_until(lambda port=port: self._answers(port, b"220 "),
                                   f"greeting on {self.address}:{port}")

    def stop(self) -> None:
        self.daemon.stop()
        self.remove()


class DovecotServer(_MailServer):
    """Dovecot 2.3 in the foreground, all of it as the ``dovecot`` user: IMAP on
    ``imap_port`` and POP3 on ``pop3_port``, both offering STARTTLS."""

    def __init__(self, address: str = "127.0.0.1"):
        self.binary = require("dovecot", "dovecot-imapd")
        require("/usr/lib/dovecot/pop3-login", "dovecot-pop3d")
        super().__init__("dovecot", address)
        self.imap_port, self.pop3_port = free_port(address), free_port(address)
        conf = self.directory / "dovecot.conf"
        conf.write_text(f"""\
base_dir = {self.directory}/run
state_dir = {self.directory}/state
log_path = {self.directory}/dovecot.log
protocols = imap pop3
listen = {address}
ssl = yes
ssl_cert = <{self.chain_path}
ssl_key = <{self.key_path}
disable_plaintext_auth = yes
# Not root: every process runs as the user that started it, unchrooted.
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovecot
passdb {{
  driver = static
  args = password=unused
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {address}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = {address}
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""")
        self._own()
        argv = [require("setpriv", "util-linux"), "--reuid=dovecot", "--regid=dovecot",
                "--clear-groups", self.binary, "-F", "-c", str(conf)]
        self.daemon = Daemon(f"dovecot {address}", argv, self.directory / "dovecot.out")

    def start(self) -> None:
        self.daemon.start()
        self.daemon.wait_until(lambda: self._answers(self.imap_port, b"* OK"),
                               f"IMAP greeting on {self.address}:{self.imap_port}")
        self.daemon.wait_until(lambda: self._answers(self.pop3_port, b"+OK"),
                               f"POP3 greeting on {self.address}:{self.pop3_port}")

    def stop(self) -> None:
        self.daemon.stop()
        self.remove()

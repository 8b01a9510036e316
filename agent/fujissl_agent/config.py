"""The configuration file (INI): an ``[agent]`` section, and one section per
certificate named by its common name, with the words of the fujissl-go client
it descends from (``private_key``, ``certificate``, ``ca_bundle``,
``document_root``, ``backup_dir``) and a few more.

Every error names the file, the section and the key, in words for the
administrator who wrote it."""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field

from .errors import AgentError

DEFAULT_PATH = "/etc/fujissl-agent/agent.conf"
ENVIRONMENT_VARIABLE = "FUJISSL_AGENT_CONFIG"
DEFAULT_STATE_DIR = "/var/lib/fujissl-agent"
DEFAULT_INTERVAL = 300
DEFAULT_TLS_CHECK = "127.0.0.1:443"
DEFAULT_TLS_GRACE = 10.0
DEFAULT_BACKUPS_KEPT = 5
DEFAULT_COMMAND_TIMEOUT = 60.0

FILE_ROLES = ("private_key", "certificate", "ca_bundle", "fullchain")
_AGENT_KEYS = {"url", "ca_file", "state_dir", "interval", "tls_grace", "command_timeout"}
_CERTIFICATE_KEYS = set(FILE_ROLES) | {
    "document_root", "backup_dir", "backups_kept", "config_test", "reload", "tls_check", "sni",
    "key_on_host", "key_type", "key_mode", "cert_mode", "alt_names",
}
_NAME = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*"
                   r"[A-Za-z0-9])?)*$")
KEY_TYPES = ("ec", "rsa")


class ConfigError(AgentError):
    pass


@dataclass
class CertificateConfig:
    """One certificate section."""

    name: str
    paths: dict[str, str]  # role -> absolute path, only the roles configured
    backup_dir: str
    document_root: str = ""
    backups_kept: int = DEFAULT_BACKUPS_KEPT
    config_test: str = ""
    reload: str = ""
    tls_host: str = "127.0.0.1"
    tls_port: int = 443  # 0: no TLS check
    sni: str = ""
    key_on_host: bool = False
    key_type: str = "ec"
    key_mode: int = 0o600
    cert_mode: int = 0o644
    alt_names: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The name as it may appear in a file name (``*.example.test``:
        ``_.example.test``)."""
        return re.sub(r"[^A-Za-z0-9.-]", "_", self.name)

    @property
    def names(self) -> list[str]:
        """Every name of the certificate, its common name first."""
        return [self.name] + [n for n in self.alt_names if n != self.name]

    def mode_for(self, role: str) -> int:
        return self.key_mode if role == "private_key" else self.cert_mode


@dataclass
class Config:
    path: str
    url: str = ""
    ca_file: str = ""
    state_dir: str = DEFAULT_STATE_DIR
    interval: int = DEFAULT_INTERVAL
    tls_grace: float = DEFAULT_TLS_GRACE
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    certificates: dict[str, CertificateConfig] = field(default_factory=dict)


def config_path(given: str | None) -> str:
    """``--config``, else $FUJISSL_AGENT_CONFIG, else the default."""
    return given or os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_PATH


def load(path: str, *, missing_ok: bool = False) -> Config:
    """The configuration at ``path``; with ``missing_ok``, the defaults when
    there is no such file (``enrol`` may come before the file is written)."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    try:
        with open(path, encoding="utf-8") as source:
            parser.read_file(source)
    except FileNotFoundError:
        if missing_ok:
            return Config(path=path)
        raise ConfigError(f"{path}: no such configuration file (--config or "
                          f"${ENVIRONMENT_VARIABLE} names another)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a valid configuration file: "
                          f"{' '.join(str(exc).split())}") from None
    return parse(parser, path)


def parse(parser: configparser.ConfigParser, path: str) -> Config:
    config = Config(path=path)
    if parser.has_section("agent"):
        _agent_section(Section(parser, "agent", path), config)
    owners: dict[str, tuple[str, str]] = {}  # file -> (section, role)
    for name in parser.sections():
        if name == "agent":
            continue
        section = Section(parser, name, path)
        certificate = _certificate_section(section, config)
        for role, file in certificate.paths.items():
            if file in owners:
                other, other_role = owners[file]
                raise section.error(role, f"{file} is also the {other_role} of [{other}]: "
                                          "each certificate needs files of its own")
            owners[file] = (name, role)
        config.certificates[certificate.name] = certificate
    return config


class Section:
    """Reads one section's values, each error naming file, section and key."""

    def __init__(self, parser: configparser.ConfigParser, name: str, path: str) -> None:
        self.values = dict(parser.items(name))
        self.name, self.path = name, path

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: [{self.name}] {key}: {problem}")

    def check_keys(self, allowed: set) -> None:
        for key in self.values:
            if key not in allowed:
                raise self.error(key, "unknown key (known: " + ", ".join(sorted(allowed)) + ")")

    def text(self, key: str, default: str = "") -> str:
        return self.values.get(key, "").strip() or default

    def absolute_path(self, key: str, *, required: bool = False) -> str:
        value = self.text(key)
        if not value:
            if required:
                raise self.error(key, "required: an absolute path")
            return ""
        if not os.path.isabs(value):
            raise self.error(key, f"{value!r} is not an absolute path")
        return os.path.normpath(value)

    def number(self, key: str, default: float, low: float, high: float, *,
               integer: bool = True) -> float:
        value = self.text(key)
        if not value:
            return default
        try:
            number = int(value) if integer else float(value)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise self.error(key, f"{value!r} is not {kind} of seconds") from None
        if not low <= number <= high:
            raise self.error(key, f"{value} is out of range ({low:g} to {high:g})")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.text(key).lower()
        if not value:
            return default
        if value in ("yes", "true", "on", "1"):
            return True
        if value in ("no", "false", "off", "0"):
            return False
        raise self.error(key, f"{value!r} is neither yes nor no")

    def mode(self, key: str, default: int, *, private: bool) -> int:
        value = self.text(key)
        if not value:
            return default
        if not re.fullmatch(r"0?[0-7]{3}", value):
            raise self.error(key, f"{value!r} is not an octal file mode such as 0600")
        mode = int(value, 8)
        if private and mode & 0o077:
            raise self.error(key, f"{value} lets the group or others read the private key; "
                                  "use 0600 or 0400")
        if private and not mode & 0o400:
            raise self.error(key, f"{value} does not let the owner read the private key")
        if mode & 0o002:
            raise self.error(key, f"{value} lets anyone write the file")
        return mode


def _agent_section(section: Section, config: Config) -> None:
    section.check_keys(_AGENT_KEYS)
    url = section.text("url").rstrip("/")
    problem = url_problem(url) if url else ""
    if problem:
        raise section.error("url", problem)
    config.url = url
    config.ca_file = section.absolute_path("ca_file")
    if config.ca_file and not os.path.isfile(config.ca_file):
        raise section.error("ca_file", f"{config.ca_file} does not exist")
    config.state_dir = section.absolute_path("state_dir") or DEFAULT_STATE_DIR
    config.interval = int(section.number("interval", DEFAULT_INTERVAL, 10, 86400))
    config.tls_grace = section.number("tls_grace", DEFAULT_TLS_GRACE, 1, 300, integer=False)
    config.command_timeout = section.number("command_timeout", DEFAULT_COMMAND_TIMEOUT, 1,
                                            3600, integer=False)


def url_problem(url: str) -> str:
    """Why ``url`` cannot be the portal's address; empty if it can. HTTPS, or
    plain HTTP to this machine's loopback address only (a portal on the same
    machine, or a test's), where the token never crosses a network."""
    match = re.fullmatch(r"(https?)://([^/\s?#@]+)(/[^\s?#]*)?", url)
    if not match:
        return f"{url!r} is not an https:// address of the portal"
    if match.group(1) == "http":
        host = re.sub(r":\d+$", "", match.group(2)).strip("[]")
        if not (host == "localhost" or host == "::1" or re.fullmatch(r"127(\.\d{1,3}){3}", host)):
            return (f"{url!r} is plain http: the portal is spoken to over https (http is "
                    "accepted on the loopback address only)")
    return ""


def _certificate_section(section: Section, config: Config) -> CertificateConfig:
    if not _NAME.match(section.name):
        raise ConfigError(f"{section.path}: [{section.name}]: a certificate section is named "
                          "by the certificate's common name, such as [www.example.test] or "
                          "[*.example.test]")
    section.check_keys(_CERTIFICATE_KEYS)
    paths = {}
    for role in FILE_ROLES:
        path = section.absolute_path(role, required=role == "private_key")
        if path:
            paths[role] = path
    if "certificate" not in paths and "fullchain" not in paths:
        raise section.error("certificate", "required (or fullchain): where the certificate goes")
    _distinct_paths(section, paths)
    certificate = CertificateConfig(
        name=section.name, paths=paths,
        backup_dir=section.absolute_path("backup_dir", required=True),
        document_root=section.absolute_path("document_root"),
        backups_kept=int(section.number("backups_kept", DEFAULT_BACKUPS_KEPT, 1, 100)),
        config_test=section.text("config_test"), reload=section.text("reload"),
        sni=section.text("sni"),
        key_on_host=section.boolean("key_on_host", False),
        key_type=section.text("key_type", "ec").lower(),
        key_mode=section.mode("key_mode", 0o600, private=True),
        cert_mode=section.mode("cert_mode", 0o644, private=False),
        alt_names=_names(section),
    )
    if certificate.key_type not in KEY_TYPES:
        raise section.error("key_type", f"{certificate.key_type!r} is not one of "
                                        + ", ".join(KEY_TYPES))
    if certificate.sni and not _NAME.match(certificate.sni) or certificate.sni.startswith("*"):
        raise section.error("sni", f"{certificate.sni!r} is not a host name")
    certificate.tls_host, certificate.tls_port = _tls_check(section)
    return certificate


def _distinct_paths(section: Section, paths: dict[str, str]) -> None:
    seen: dict[str, str] = {}
    for role, path in paths.items():
        if path in seen:
            raise section.error(role, f"{path} is also the {seen[path]}: each file needs a "
                                      "path of its own")
        seen[path] = role


def _names(section: Section) -> list[str]:
    names = section.text("alt_names").replace(",", " ").split()
    for name in names:
        if not _NAME.match(name):
            raise section.error("alt_names", f"{name!r} is not a host name")
    return names


def _tls_check(section: Section) -> tuple:
    value = section.text("tls_check", DEFAULT_TLS_CHECK)
    if value.lower() == "none":
        return "", 0
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})", value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise section.error("tls_check", f"{value!r} is not host:port (such as "
                                         f"{DEFAULT_TLS_CHECK}), nor none")
    return match.group(1).strip("[]"), int(match.group(2))

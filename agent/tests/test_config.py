"""The configuration file: a good one read, and each mistake named by file,
section and key."""

from __future__ import annotations

import pytest

from fujissl_agent import config as configuration

from .helpers import run_agent

GOOD = """\
[agent]
url = https://portal.example.test/
state_dir = /var/lib/fujissl-agent
interval = 120

[www.example.test]
private_key = /etc/ssl/private/www.key
certificate = /etc/ssl/certs/www.crt
ca_bundle = /etc/ssl/certs/www-chain.crt
fullchain =
document_root = /var/www/html
backup_dir = /etc/ssl/backup
config_test = nginx -t
reload = systemctl reload nginx
key_on_host = yes
key_mode = 0400
alt_names = example.test, www2.example.test

[*.example.test]
private_key = /etc/ssl/private/wild.key
fullchain = /etc/ssl/certs/wild.pem
backup_dir = /etc/ssl/backup
tls_check = [::1]:8443
sni = a.example.test
reload = date +%s > /dev/null
"""


def load(tmp_path, text):
    path = tmp_path / "agent.conf"
    path.write_text(text)
    return configuration.load(str(path))


def test_a_good_configuration(tmp_path):
    config = load(tmp_path, GOOD)
    assert config.url == "https://portal.example.test"
    assert config.interval == 120
    www = config.certificates["www.example.test"]
    assert www.paths == {"private_key": "/etc/ssl/private/www.key",
                         "certificate": "/etc/ssl/certs/www.crt",
                         "ca_bundle": "/etc/ssl/certs/www-chain.crt"}
    assert (www.tls_host, www.tls_port) == ("127.0.0.1", 443)
    assert www.key_on_host and www.key_mode == 0o400 and www.cert_mode == 0o644
    assert www.names == ["www.example.test", "example.test", "www2.example.test"]
    wild = config.certificates["*.example.test"]
    assert wild.label == "_.example.test"
    assert (wild.tls_host, wild.tls_port, wild.sni) == ("::1", 8443, "a.example.test")
    assert wild.reload == "date +%s > /dev/null"  # no interpolation of the admin's commands
    assert not wild.key_on_host and wild.key_mode == 0o600


@pytest.mark.parametrize(("change", "message"), [
    (("interval = 120", "interval = soon"), "[agent] interval: 'soon' is not a whole number"),
    (("url = https://portal.example.test/", "url = http://portal.example.test"),
     "[agent] url: 'http://portal.example.test' is plain http"),
    (("url = https://portal.example.test/", "url = http://127.0.0.1.example.test:80"),
     "[agent] url: 'http://127.0.0.1.example.test:80' is plain http"),
    (("url = https://portal.example.test/", "url = ftp://portal.example.test"),
     "[agent] url: 'ftp://portal.example.test' is not an https:// address"),
    (("state_dir = /var/lib/fujissl-agent", "state_dir = var/lib"),
     "[agent] state_dir: 'var/lib' is not an absolute path"),
    (("key_mode = 0400", "key_mode = 0640"),
     "[www.example.test] key_mode: 0640 lets the group or others read the private key"),
    (("key_mode = 0400", "key_mode = rw-------"),
     "[www.example.test] key_mode: 'rw-------' is not an octal file mode"),
    (("key_mode = 0400", "cert_mode = 0666"),
     "[www.example.test] cert_mode: 0666 lets anyone write the file"),
    (("private_key = /etc/ssl/private/www.key", "private_key = www.key"),
     "[www.example.test] private_key: 'www.key' is not an absolute path"),
    (("private_key = /etc/ssl/private/www.key\n", ""),
     "[www.example.test] private_key: required"),
    (("ca_bundle = /etc/ssl/certs/www-chain.crt", "ca_bundle = /etc/ssl/certs/www.crt"),
     "[www.example.test] ca_bundle: /etc/ssl/certs/www.crt is also the certificate"),
    (("backup_dir = /etc/ssl/backup\nconfig_test", "config_test"),
     "[www.example.test] backup_dir: required"),
    (("key_on_host = yes", "key_on_host = maybe"),
     "[www.example.test] key_on_host: 'maybe' is neither yes nor no"),
    (("tls_check = [::1]:8443", "tls_check = localhost"),
     "[*.example.test] tls_check: 'localhost' is not host:port"),
    (("tls_check = [::1]:8443", "tls_check = 127.0.0.1:70000"),
     "[*.example.test] tls_check: '127.0.0.1:70000' is not host:port"),
    (("reload = systemctl", "relaod = systemctl"), "[www.example.test] relaod: unknown key"),
    (("[*.example.test]", "[web server]"), "[web server]: a certificate section is named by"),
    (("fullchain = /etc/ssl/certs/wild.pem", "fullchain = /etc/ssl/certs/www.crt"),
     "[*.example.test] fullchain: /etc/ssl/certs/www.crt is also the certificate of "
     "[www.example.test]"),
    (("alt_names = example.test,", "alt_names = exa mple/test,"),
     "[www.example.test] alt_names: 'mple/test' is not a host name"),
])
def test_mistakes_are_named_by_section_and_key(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(configuration.ConfigError) as error:
        load(tmp_path, GOOD.replace(old, new, 1))
    assert f"{tmp_path / 'agent.conf'}: {message}" in str(error.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000/portal",
                                 "http://[::1]:8000", "https://portal.example.test:8443/p"])
def test_https_or_plain_http_on_the_loopback_address(url):
    assert configuration.url_problem(url) == ""


def test_a_file_that_is_not_ini(tmp_path):
    with pytest.raises(configuration.ConfigError, match="not a valid configuration file"):
        load(tmp_path, "private_key = /x\n")


def test_the_command_says_what_is_wrong_in_one_line_and_exits_1(tmp_path, capsys):
    path = tmp_path / "agent.conf"
    path.write_text(GOOD.replace("key_mode = 0400", "key_mode = 0644"))
    assert run_agent("run", "--config", str(path)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"fujissl-agent: {path}: [www.example.test] key_mode: 0644")


def test_the_file_is_found_through_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FUJISSL_AGENT_CONFIG", str(tmp_path / "elsewhere.conf"))
    assert run_agent("run") == 1
    assert f"{tmp_path / 'elsewhere.conf'}: no such configuration file" in capsys.readouterr().err

"""The test bed's promises: each peer is up, reachable and behaves as the real thing."""

import base64
import hashlib
import imaplib
import io
import poplib
import pwd
import smtplib
import ssl
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import josepy
import paramiko
import pytest
import requests
from acme import challenges, client, crypto_util, messages
from cryptography.hazmat.primitives.asymmetric import ec

from testbed import certs


def _txt_update(bind_dns, name: str, value: str, secret: str) -> dns.message.Message:
    keyring = dns.tsigkeyring.from_text({bind_dns.tsig_key_name: (bind_dns.tsig_algorithm, secret)})
    update = dns.update.Update(bind_dns.zone, keyring=keyring, keyname=bind_dns.tsig_key_name,
                               keyalgorithm=dns.tsig.HMAC_SHA256)
    update.add(name, 60, "TXT", value)
    return dns.query.tcp(update, bind_dns.address, port=bind_dns.port, timeout=5)


def _connect(client: paramiko.SSHClient, host, **credentials) -> None:
    client.connect(host.address, port=host.ssh_port, username=host.ssh_user,
                   look_for_keys=False, allow_agent=False, timeout=10, **credentials)


def _ssh_client(host) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    # Pin the host key; an unknown key must be refused, never learnt.
    key = paramiko.Ed25519Key(data=base64.b64decode(host.host_public_key.split()[1]))
    client.get_host_keys().add(f"[{host.address}]:{host.ssh_port}", "ssh-ed25519", key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def test_pebble_directory_answers_over_its_own_tls(pebble):
    directory = requests.get(pebble.directory_url, verify=pebble.ca_bundle, timeout=5).json()
    assert {"newAccount", "newOrder", "newNonce"} <= directory.keys()
    assert "BEGIN CERTIFICATE" in pebble.root_pem()
    assert "BEGIN CERTIFICATE" in pebble.intermediate_pem()


def test_pebble_restarts_on_the_same_directory_url(pebble_factory):
    pebble = pebble_factory()
    pebble.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(pebble.directory_url, verify=pebble.ca_bundle, timeout=5)
    pebble.start()
    assert requests.get(pebble.directory_url, verify=pebble.ca_bundle, timeout=5).ok


def test_pebble_with_eab_keys_requires_external_account_binding(pebble_factory, pebble):
    key = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
    strict = pebble_factory(eab_keys={"kid-1": key}, nonce_reject=None)
    meta = requests.get(strict.directory_url, verify=strict.ca_bundle, timeout=5).json()["meta"]
    assert meta["externalAccountRequired"] is True
    assert strict.http_port == pebble.http_port


def _acme_account(pebble) -> tuple[client.ClientV2, josepy.JWK]:
    key = josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    network = client.ClientNetwork(key, alg=josepy.ES256, verify_ssl=pebble.ca_bundle)
    acme = client.ClientV2(client.ClientV2.get_directory(pebble.directory_url, network), network)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    return acme, key


def _issue(pebble, names: list[str], challenge_type, publish) -> str:
    """Order ``names``, ``publish(challenge, account_key)`` each challenge; the chain."""
    acme, account_key = _acme_account(pebble)
    order = acme.new_order(crypto_util.make_csr(certs.key_pem(certs.new_key()).encode(), names))
    chosen = [c for authz in order.authorizations for c in authz.body.challenges
              if isinstance(c.chall, challenge_type)]
    for challenge in chosen:
        publish(challenge.chall, account_key)
    for challenge in chosen:
        acme.answer_challenge(challenge, challenge.chall.response(account_key))
    return acme.poll_and_finalize(order).fullchain_pem


def test_pebble_validates_http01_at_each_target_host_through_bind(pebble, target_host_factory):
    for host in (target_host_factory(), target_host_factory()):
        def publish(challenge, account_key, host=host):
            path = host.webroot / challenge.path.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(challenge.validation(account_key))
        assert "BEGIN CERTIFICATE" in _issue(pebble, [host.name], challenges.HTTP01, publish)


def test_pebble_validates_a_wildcard_by_dns01_written_over_rfc2136(pebble, bind_dns):
    def publish(challenge, account_key):
        # Both names share _acme-challenge.h9: add, never replace.
        response = _txt_update(bind_dns, "_acme-challenge.h9",
                               challenge.validation(account_key), bind_dns.tsig_secret)
        assert response.rcode() == dns.rcode.NOERROR
    names = ["h9.example.test", "*.h9.example.test"]
    assert "BEGIN CERTIFICATE" in _issue(pebble, names, challenges.DNS01, publish)
    assert len(bind_dns.txt("_acme-challenge.h9.example.test")) == 2


def test_bind_resolves_each_host_name_to_its_own_address(bind_dns):
    for name, address in [("h2.example.test", "127.0.0.2"), ("x.h7.example.test", "127.0.0.7"),
                          ("anything.example.test", "127.0.0.1")]:
        answer = bind_dns.query(name, "A").answer
        assert [rdata.address for rrset in answer for rdata in rrset] == [address], name


def test_bind_accepts_a_tsig_signed_txt_update_and_then_answers_it(bind_dns):
    response = _txt_update(bind_dns, "_acme-challenge.h3", "token-1", bind_dns.tsig_secret)
    assert response.rcode() == dns.rcode.NOERROR
    assert bind_dns.txt("_acme-challenge.h3.example.test") == ["token-1"]


def test_bind_refuses_an_update_signed_with_a_wrong_secret(bind_dns):
    wrong = base64.b64encode(b"not the secret, not at all, no!!").decode()
    with pytest.raises(dns.tsig.PeerBadSignature):
        _txt_update(bind_dns, "_acme-challenge.h4", "forged", wrong)
    assert bind_dns.txt("_acme-challenge.h4.example.test") == []


def test_sshd_accepts_the_client_key_with_the_pinned_host_key(target_host):
    client = _ssh_client(target_host)
    _connect(client, target_host, key_filename=str(target_host.client_key_path))
    try:
        _, stdout, _ = client.exec_command("echo hello")
        assert stdout.read().strip() == b"hello"
    finally:
        client.close()


def test_sshd_refuses_another_client_key(target_host):
    stranger = paramiko.Ed25519Key.from_private_key(io.StringIO(certs.ssh_keypair("stranger")[0]))
    client = _ssh_client(target_host)
    with pytest.raises(paramiko.AuthenticationException):
        _connect(client, target_host, pkey=stranger)
    client.close()


def test_sshd_with_a_replaced_host_key_is_refused_by_the_old_pin(target_host):
    client = _ssh_client(target_host)  # pins the original key
    old = target_host.host_key_fingerprint
    assert target_host.replace_host_key() != old
    with pytest.raises(paramiko.BadHostKeyException):
        _connect(client, target_host, key_filename=str(target_host.client_key_path))
    client.close()


def test_nginx_serves_the_webroot_on_the_acme_http_port(target_host, acme_http_port):
    challenge = target_host.webroot / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "x").write_text("token.thumbprint")
    url = f"http://{target_host.address}:{acme_http_port}/.well-known/acme-challenge/x"
    assert requests.get(url, timeout=5).text == "token.thumbprint"


def test_nginx_tls_vhost_serves_the_certificate_on_disk(target_host):
    assert target_host.served_leaf_sha256() == certs.leaf_sha256(target_host.fullchain_path)


def test_nginx_reload_over_ssh_serves_a_newly_written_certificate(target_host):
    key, cert = certs.self_signed(target_host.name)
    target_host.fullchain_path.write_text(certs.cert_pem(cert))
    target_host.private_key_path.write_text(certs.key_pem(key))
    client = _ssh_client(target_host)
    _connect(client, target_host, key_filename=str(target_host.client_key_path))
    try:
        for command in (target_host.config_test_command, target_host.reload_command):
            _, stdout, stderr = client.exec_command(command)
            assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
    finally:
        client.close()
    # A reload is asynchronous: old workers answer for a moment after it.
    target_host.wait_for_served_leaf(certs.leaf_sha256(target_host.fullchain_path))
    for _ in range(20):
        assert target_host.served_leaf_sha256() == certs.leaf_sha256(target_host.fullchain_path)


def _verifying_context(server) -> ssl.SSLContext:
    """Trusts only the mail server's own CA, and checks the name (the address,
    in its certificate too): the handshake proves the served certificate is
    the testbed's."""
    return ssl.create_default_context(cadata=server.ca_pem)


def _leaf_sha256(sock) -> str:
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def test_exim_offers_starttls_on_one_port_and_not_on_the_other(exim_smtp):
    with smtplib.SMTP(exim_smtp.address, exim_smtp.starttls_port, timeout=5) as smtp:
        smtp.ehlo("client.example.test")
        assert smtp.has_extn("starttls")
        smtp.starttls(context=_verifying_context(exim_smtp))
        assert _leaf_sha256(smtp.sock) == exim_smtp.leaf_sha256
    with smtplib.SMTP(exim_smtp.address, exim_smtp.plain_port, timeout=5) as smtp:
        smtp.ehlo("client.example.test")
        assert not smtp.has_extn("starttls")


def test_dovecot_offers_starttls_for_imap_and_pop3(dovecot_mail):
    context = _verifying_context(dovecot_mail)
    imap = imaplib.IMAP4(dovecot_mail.address, dovecot_mail.imap_port, timeout=5)
    try:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(ssl_context=context)
        assert _leaf_sha256(imap.sock) == dovecot_mail.leaf_sha256
    finally:
        imap.logout()
    pop = poplib.POP3(dovecot_mail.address, dovecot_mail.pop3_port, timeout=5)
    try:
        assert "STLS" in pop.capa()
        pop.stls(context=context)
        assert _leaf_sha256(pop.sock) == dovecot_mail.leaf_sha256
    finally:
        pop.quit()


def test_the_mail_servers_run_as_their_own_users(exim_smtp, dovecot_mail):
    for server, user in ((exim_smtp, "Debian-exim"), (dovecot_mail, "dovecot")):
        status = Path(f"/proc/{server.daemon.proc.pid}/status").read_text()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert int(uid) == pwd.getpwnam(user).pw_uid

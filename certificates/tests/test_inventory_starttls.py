"""Mail endpoints over STARTTLS, against real servers on loopback: Exim for SMTP,
Dovecot for IMAP and POP3. The served chain is fetched after the protocol's
greeting and STARTTLS and verified as for plain TLS; a server that offers no
STARTTLS, answers as another protocol or says nothing gives a stored result."""

import socket

import pytest

from certificates.inventory import discovery, monitoring
from certificates.inventory.verification import describe
from certificates.models import (
    AuditEvent,
    EndpointCheck,
    InventoryCertificate,
    MonitoredEndpoint,
)

pytestmark = pytest.mark.django_db
NAME = "mail.example.test"
Protocol = MonitoredEndpoint.Protocol


@pytest.fixture
def trusted(settings, tmp_path, exim_smtp, dovecot_mail):
    """The mail servers' CAs trusted as an organisation's private CAs."""
    roots = tmp_path / "mail-roots.pem"
    roots.write_text(exim_smtp.ca_pem + dovecot_mail.ca_pem)
    settings.INVENTORY_EXTRA_ROOTS = str(roots)
    return exim_smtp, dovecot_mail


@pytest.mark.parametrize("protocol", [Protocol.SMTP, Protocol.IMAP, Protocol.POP3])
def test_a_mail_endpoint_serves_its_chain_after_starttls_and_it_verifies(
        organization, trusted, protocol):
    exim, dovecot = trusted
    server, port = {Protocol.SMTP: (exim, exim.starttls_port),
                    Protocol.IMAP: (dovecot, dovecot.imap_port),
                    Protocol.POP3: (dovecot, dovecot.pop3_port)}[protocol]
    endpoint = monitoring.watch(organization, address="127.0.0.1", port=port, sni_name=NAME,
                                protocol=protocol)

    check = monitoring.check(endpoint.pk)

    assert check.result == "ok", (check.problems, check.error)
    assert check.fingerprint_sha256 == server.leaf_sha256
    endpoint.refresh_from_db()
    assert endpoint.protocol == protocol and endpoint.certificate.common_name == NAME
    assert {"address": "127.0.0.1", "port": port, "sni": NAME,
            "protocol": protocol} in endpoint.certificate.seen_at


def test_the_scheduled_scan_speaks_each_endpoint_s_protocol(organization, trusted):
    exim, dovecot = trusted
    for port, protocol in ((exim.starttls_port, Protocol.SMTP),
                           (dovecot.pop3_port, Protocol.POP3)):
        monitoring.watch(organization, address="127.0.0.1", port=port, sni_name=NAME,
                         protocol=protocol)
    assert monitoring.check_due() == 2
    assert set(EndpointCheck.objects.values_list("result", "fingerprint_sha256")) == {
        ("ok", exim.leaf_sha256), ("ok", dovecot.leaf_sha256)}


def test_the_same_port_as_plain_tls_does_not_handshake(organization, exim_smtp):
    """Proof that the protocol is spoken: without it, the SMTP port is no TLS port."""
    endpoint = monitoring.watch(organization, address="127.0.0.1",
                                port=exim_smtp.starttls_port, sni_name=NAME)
    assert monitoring.check(endpoint.pk).result == "unreachable"


def _failed(organization, port, protocol, **watch) -> EndpointCheck:
    endpoint = monitoring.watch(organization, address="127.0.0.1", port=port,
                                protocol=protocol, **watch)
    check = monitoring.check(endpoint.pk)
    assert check.result == "unreachable" and not check.fingerprint_sha256
    endpoint.refresh_from_db()
    assert endpoint.result == "unreachable" and endpoint.problems == check.problems
    return check


def test_an_smtp_server_without_starttls_is_reported_as_such(organization, exim_smtp):
    check = _failed(organization, exim_smtp.plain_port, Protocol.SMTP)
    assert check.problems == [{"code": "starttls_not_offered", "params": {"protocol": "SMTP"}}]
    assert describe(check.problems[0]) == "The SMTP server does not offer STARTTLS."


def test_a_server_that_answers_starttls_with_an_error_is_reported_with_its_answer(
        organization, exim_smtp):
    """Exim offers STARTTLS on this port but cannot read its certificate there:
    it answers the command with a 454, which the stored result quotes."""
    check = _failed(organization, exim_smtp.refusing_port, Protocol.SMTP)
    [problem] = check.problems
    assert problem["code"] == "starttls_refused", problem
    assert problem["params"]["protocol"] == "SMTP"
    assert problem["params"]["answer"].startswith("454 "), problem
    assert describe(problem).startswith("The SMTP server refused STARTTLS: 454 ")


def test_a_server_of_another_protocol_is_a_wrong_greeting(organization, exim_smtp,
                                                          dovecot_mail):
    check = _failed(organization, dovecot_mail.imap_port, Protocol.SMTP)
    [problem] = check.problems
    assert problem["code"] == "starttls_bad_greeting"
    assert problem["params"]["answer"].startswith("* OK")
    assert "did not answer as a SMTP server: * OK" in describe(problem)
    # And the other way round: an SMTP greeting is no POP3 greeting.
    check = _failed(organization, exim_smtp.starttls_port, Protocol.POP3)
    assert check.problems[0]["code"] == "starttls_bad_greeting"
    assert check.problems[0]["params"]["answer"].startswith("220 ")


def test_a_server_that_says_nothing_times_out_into_a_stored_result(organization, settings):
    settings.ENDPOINT_CHECK_TIMEOUT = 0.5
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks
        check = _failed(organization, silent.getsockname()[1], Protocol.IMAP)
    assert check.problems == [{"code": "starttls_timeout", "params": {"protocol": "IMAP"}}]
    assert describe(check.problems[0]) == "The IMAP server did not answer in time."


def test_the_egress_policy_applies_to_starttls(exim_smtp, settings):
    settings.OUTBOUND_ALLOW = []
    observation = monitoring.observe("127.0.0.1", exim_smtp.starttls_port, NAME, timeout=2,
                                     protocol=Protocol.SMTP)
    assert not observation.chain and "outbound policy" in str(observation.error)


def test_discovery_asks_mail_ports_with_starttls_and_watches_them_on_acceptance(
        organization, trusted, settings):
    exim, dovecot = trusted
    settings.DISCOVERY_PORTS = [exim.starttls_port, dovecot.pop3_port]
    found = discovery.scan(organization, targets_text="127.0.0.1",
                           ports_text=f"{exim.starttls_port}/smtp {dovecot.pop3_port}/pop3",
                           names=[NAME])
    assert found.served >= 2
    smtp_row = InventoryCertificate.objects.get(fingerprint_sha256=exim.leaf_sha256)
    assert {"address": "127.0.0.1", "port": exim.starttls_port, "sni": NAME,
            "protocol": "smtp"} in smtp_row.seen_at
    assert f"smtp://127.0.0.1:{exim.starttls_port} ({NAME})" in smtp_row.where()
    pop3_row = InventoryCertificate.objects.get(fingerprint_sha256=dovecot.leaf_sha256)
    assert any(place.get("protocol") == "pop3" for place in pop3_row.seen_at)

    discovery.accept([smtp_row])
    endpoint = MonitoredEndpoint.objects.get(port=exim.starttls_port, sni_name=NAME)
    assert endpoint.protocol == Protocol.SMTP
    assert monitoring.check(endpoint.pk).result == "ok"


def test_a_port_with_an_unknown_protocol_is_refused_naming_the_field(organization, settings):
    settings.DISCOVERY_PORTS = [2525]
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        discovery.scan(organization, targets_text="127.0.0.1", ports_text="2525/ftp")
    assert "2525/ftp" in str(refused.value.message_dict["ports"])


def test_the_protocol_is_chosen_in_the_form_and_shown_on_the_list(
        organization, operator, client, exim_smtp):
    client.force_login(operator)
    response = client.post("/endpoints/", {
        "address": "127.0.0.1", "port": exim_smtp.plain_port, "sni_name": NAME,
        "protocol": "smtp"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302
    endpoint = MonitoredEndpoint.objects.get(port=exim_smtp.plain_port)
    assert endpoint.protocol == "smtp"
    assert AuditEvent.objects.filter(action="endpoint_watched", user=operator,
                                     subject=str(endpoint)).exists()
    page = client.get("/endpoints/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "SMTP with STARTTLS" in page
    detail = client.get(f"/endpoints/{endpoint.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert "does not offer STARTTLS" in detail.content.decode()
    refused = client.post("/endpoints/", {"address": "127.0.0.1", "port": 25,
                                          "protocol": "gopher"}, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 200 and "gopher" in refused.content.decode()
    assert MonitoredEndpoint.objects.count() == 1

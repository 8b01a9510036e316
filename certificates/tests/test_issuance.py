"""Issuance end to end against the testbed: Pebble, BIND, and sshd + nginx hosts."""

import base64
import io
import os

import pytest
from cryptography import x509
from django.core.management import call_command

from certificates.models import Certificate, Deployment, RenewalRun
from certificates.renewal.issuance import run_issuance
from certificates.seams import keys
from certificates.steps import Step
from certificates.tests.factories import (
    bind_credential,
    ca_account,
    dns01_certificate,
    http01_certificate,
    portal_host,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def trust_pebble(settings, pebble):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)


def chain_verifies_to(chain_pem: str, root_pem: str) -> bool:
    """Each certificate of the chain is signed by the next, the last by the root."""
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    chain.append(x509.load_pem_x509_certificate(root_pem.encode()))
    for child, parent in zip(chain, chain[1:], strict=False):
        child.verify_directly_issued_by(parent)
    return True


def challenge_files(bed_host):
    directory = bed_host.webroot / ".well-known" / "acme-challenge"
    return sorted(os.listdir(directory)) if directory.exists() else []


def assert_issued(run, names, pebble):
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    version = run.version
    leaf = x509.load_pem_x509_certificate(version.leaf_pem().encode())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
    assert chain_verifies_to(version.chain_pem, pebble.root_pem())
    assert keys.public_key_matches(version.private_key, leaf)
    certificate = Certificate.objects.get(pk=run.certificate_id)
    assert certificate.current_version_id == version.pk
    assert certificate.expires_at == version.not_after
    assert version.not_before < certificate.renew_after < version.not_after
    return version


def test_a_single_name_certificate_is_issued_by_http01_through_the_hosts_document_root(
    organization, pebble, trust_pebble, target_host
):
    ca = ca_account(organization, directory_url=pebble.directory_url)
    host = portal_host(organization, target_host)
    cert = http01_certificate(organization, ca, host, [target_host.name])

    run = run_issuance(certificate_id=cert.pk)

    assert_issued(run, [target_host.name], pebble)
    assert challenge_files(target_host) == []
    steps = list(run.steps.values_list("name", "status"))
    for expected in [("order", "done"), ("challenge", "done"), ("validation", "done"),
                     ("finalize", "done"), ("store", "done"), ("cleanup", "done")]:
        assert expected in steps
    assert steps.index(("account", "done")) < steps.index(("order", "done"))
    ca.refresh_from_db()
    assert ca.account_url.startswith("https://127.0.0.1:")


def test_a_multi_san_certificate_is_issued_by_http01(organization, pebble, trust_pebble,
                                                     target_host):
    ca = ca_account(organization, directory_url=pebble.directory_url)
    host = portal_host(organization, target_host)
    names = [target_host.name, f"www.{target_host.name}", f"api.{target_host.name}"]
    cert = http01_certificate(organization, ca, host, names, key_type="rsa-2048")

    run = run_issuance(certificate_id=cert.pk)

    version = assert_issued(run, names, pebble)
    leaf = x509.load_pem_x509_certificate(version.leaf_pem().encode())
    assert leaf.public_key().key_size == 2048
    assert challenge_files(target_host) == []


def test_a_wildcard_and_its_base_name_are_issued_by_dns01_over_rfc2136(
    organization, pebble, trust_pebble, bind_dns
):
    ca = ca_account(organization, directory_url=pebble.directory_url)
    cert = dns01_certificate(organization, ca, bind_dns, ["*.example.test", "example.test"],
                             key_type="ec-p384")

    run = run_issuance(certificate_id=cert.pk)

    assert_issued(run, ["*.example.test", "example.test"], pebble)
    # Both values lived at one name; both are gone, and nothing else was touched.
    assert bind_dns.txt("_acme-challenge.example.test") == []
    assert ("cleanup", "done") in list(run.steps.values_list("name", "status"))


def test_a_validation_that_cannot_succeed_fails_permanently_with_the_cas_detail(
    organization, pebble, trust_pebble, target_host
):
    ca = ca_account(organization, directory_url=pebble.directory_url)
    host = portal_host(organization, target_host)
    # nowhere.example.test resolves to 127.0.0.1, where no web server answers:
    # the challenge files go to the host, but the CA looks elsewhere.
    cert = http01_certificate(organization, ca, host, ["nowhere.example.test"])

    run = run_issuance(certificate_id=cert.pk)

    assert run.status == RenewalRun.Status.FAILED
    assert run.error_class == "permanent"
    assert run.problem["subproblems"][0]["identifier"]["value"] == "nowhere.example.test"
    assert run.problem["subproblems"][0]["detail"]
    assert run.problem["subproblems"][0]["detail"] in run.error
    validation = run.steps.filter(name="validation").order_by("pk")
    assert [step.status for step in validation] == ["started", "failed"]
    assert run.problem["subproblems"][0]["detail"] in validation.last().detail
    assert challenge_files(target_host) == []
    assert Certificate.objects.get(pk=cert.pk).current_version is None


def test_an_account_is_created_with_eab_and_refused_without_it(
    organization, pebble_factory, settings, target_host
):
    hmac_key = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    eab_pebble = pebble_factory(eab_keys={"kid-1": hmac_key})
    settings.ACME_CA_BUNDLE = str(eab_pebble.ca_bundle)
    host = portal_host(organization, target_host)

    without = ca_account(organization, name="no EAB", directory_url=eab_pebble.directory_url)
    refused = run_issuance(certificate_id=http01_certificate(
        organization, without, host, [target_host.name]).pk)
    assert refused.status == RenewalRun.Status.FAILED
    assert refused.error_class == "permanent"
    assert refused.problem["type"].endswith("externalAccountRequired")

    with_eab = ca_account(organization, name="EAB", directory_url=eab_pebble.directory_url,
                          eab_kid="kid-1", eab_hmac_key=hmac_key)
    cert = Certificate.objects.create(organization=organization, ca_account=with_eab,
                                      common_name=target_host.name, sans=[target_host.name])
    Deployment.objects.create(certificate=cert, host=host)
    run = run_issuance(certificate_id=cert.pk)
    assert_issued(run, [target_host.name], eab_pebble)
    with_eab.refresh_from_db()
    assert with_eab.account_url


def test_issuance_succeeds_with_pebbles_default_nonce_rejection(
    organization, pebble_factory, settings, target_host
):
    noisy = pebble_factory(nonce_reject=None)  # Pebble's default: 5 % of nonces refused
    settings.ACME_CA_BUNDLE = str(noisy.ca_bundle)
    ca = ca_account(organization, directory_url=noisy.directory_url)
    host = portal_host(organization, target_host)
    names = [target_host.name, f"www.{target_host.name}", f"mail.{target_host.name}"]

    run = run_issuance(certificate_id=http01_certificate(organization, ca, host, names).pk)

    assert_issued(run, names, noisy)


def test_a_ca_that_forgot_the_account_gets_it_registered_again_with_the_same_key(
    organization, pebble_factory, settings, target_host
):
    forgetful = pebble_factory()
    settings.ACME_CA_BUNDLE = str(forgetful.ca_bundle)
    ca = ca_account(organization, directory_url=forgetful.directory_url)
    host = portal_host(organization, target_host)
    cert = http01_certificate(organization, ca, host, [target_host.name])
    assert run_issuance(certificate_id=cert.pk).status == RenewalRun.Status.SUCCEEDED
    ca.refresh_from_db()
    first_url, account_key = ca.account_url, ca.account_key

    forgetful.stop()
    forgetful.start()  # Pebble keeps no state: the account is gone
    run = run_issuance(certificate_id=cert.pk)

    assert_issued(run, [target_host.name], forgetful)
    ca.refresh_from_db()
    assert ca.account_key == account_key
    account_steps = list(run.steps.filter(name="account").values_list("detail", flat=True))
    assert len(account_steps) == 1
    assert "registered again" in account_steps[0]
    names = list(run.steps.values_list("name", flat=True))
    assert names.index("account") < names.index("order")
    assert first_url  # the account existed before the CA forgot it


@pytest.mark.django_db(transaction=True)  # deployments run in threads of their own
def test_manage_py_renew_renews_deploys_and_prints_each_step(organization, pebble, trust_pebble,
                                                            target_host):
    from certificates.renewal.deposit import top_up

    ca = ca_account(organization, directory_url=pebble.directory_url)
    top_up(ca_account=ca, amount=ca.price)
    host = portal_host(organization, target_host)
    cert = http01_certificate(organization, ca, host, [target_host.name])
    out = io.StringIO()

    call_command("renew", target_host.name, stdout=out)

    printed = out.getvalue()
    for step in ("order", "challenge", "validation", "finalize", "store", "schedule", "charge",
                 "install", "tls_check"):
        assert f" {Step(step).label}" in printed  # in words, not as the code's name
    version = Certificate.objects.get(pk=cert.pk).current_version
    assert f"Issued serial {version.serial}" in printed
    target_host.wait_for_served_leaf(version.fingerprint_sha256)
    assert ca.balance() == 0


def test_a_wrong_tsig_secret_fails_permanently_and_writes_no_record(
    organization, pebble, trust_pebble, bind_dns
):
    ca = ca_account(organization, directory_url=pebble.directory_url)
    wrong_secret = base64.b64encode(os.urandom(32)).decode()
    cert = dns01_certificate(organization, ca, bind_dns, ["*.h9.example.test"], credentials=[
        bind_credential(organization, bind_dns, secret=wrong_secret)])

    run = run_issuance(certificate_id=cert.pk)

    assert run.status == RenewalRun.Status.FAILED
    assert run.error_class == "permanent"
    assert "TSIG" in run.error
    assert bind_dns.txt("_acme-challenge.h9.example.test") == []


def test_a_dns_server_that_is_down_is_a_transient_failure(organization, pebble, trust_pebble,
                                                           bind_dns):
    from testbed.ports import free_port

    ca = ca_account(organization, directory_url=pebble.directory_url)
    cert = dns01_certificate(organization, ca, bind_dns, ["*.h8.example.test"], credentials=[
        bind_credential(organization, bind_dns, port=free_port("127.0.0.1"))])

    run = run_issuance(certificate_id=cert.pk)

    assert run.status == RenewalRun.Status.FAILED
    assert run.error_class == "transient"


def test_challenge_files_are_removed_through_a_new_login_when_the_session_dropped(
    organization, target_host
):
    from certificates.renewal import challenges
    from certificates.seams import ssh

    host = portal_host(organization, target_host)
    run = RenewalRun.objects.create(certificate=http01_certificate(
        organization, ca_account(organization), host, [target_host.name]))
    path = f"{target_host.webroot}/.well-known/acme-challenge/token-1"
    with ssh.connect(host) as session:
        session.makedirs(os.path.dirname(path))
        session.write_file(path, b"proof")
        assert challenge_files(target_host) == ["token-1"]
        session._client.close()  # the connection drops while the CA validates

        challenges._remove_challenge_files(run, [(host, session, [path])])

    assert challenge_files(target_host) == []
    assert list(run.steps.values_list("name", "status", "host")) == [
        ("cleanup", "done", host.pk)]


def test_the_next_issuance_reuses_the_ca_client_until_the_account_changes(
    organization, pebble, trust_pebble
):
    from certificates.renewal import issuance

    ca = ca_account(organization, directory_url=pebble.directory_url)
    first = issuance.connect_ca(ca)
    first.ensure_account()
    issuance.remember_account(ca, first)

    again = issuance.connect_ca(ca)
    assert again is not first  # the account URL is now known: part of the key
    assert issuance.connect_ca(ca) is again and not again.registered
    ca.contact_email = "someone-else@example.test"  # an edited account: a new client
    assert issuance.connect_ca(ca) is not again

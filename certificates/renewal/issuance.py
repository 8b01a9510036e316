"""Issuing a certificate over ACME, start to finish, recorded step by step on a
renewal run: key and CSR, order, challenges (HTTP-01 through the hosts' document
roots over SSH, or DNS-01 over RFC 2136), validation, finalization, the stored
version, and the next renewal time.

No database transaction is held while the CA, a host or a DNS server is talked to
(house rule 4): each write below is its own short statement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from acme import messages
from cryptography import x509
from django.conf import settings
from django.db import transaction

from accounts.models import User
from certificates.messages import message, stored_fields
from certificates.models import (
    CAAccount,
    Certificate,
    CertificateVersion,
    Challenge,
    RenewalRun,
    Reservation,
)
from certificates.renewal import agent_wait, challenges, lifecycle, policy
from certificates.seams import acme, keys
from certificates.seams.errors import FailureKind, PortalError
from certificates.steps import Step, StepStatus

logger = logging.getLogger(__name__)
T = TypeVar("T")


class IssuanceFailed(PortalError):
    """Issuance stopped; `transient` tells whether retrying later can help, `kind`
    what stopped it (a seam's error keeps its own)."""

    kind = FailureKind.ISSUANCE_FAILED

    @classmethod
    def from_seam(cls, exc: PortalError) -> IssuanceFailed:
        """From an error of the ACME, SSH or DNS seam, keeping its sorting and kind."""
        return cls(exc, transient=exc.transient, problem=exc.problem,
                   retry_after=exc.retry_after, kind=exc.kind)


def connect_ca(ca_account: CAAccount) -> acme.CA:
    """The CA of `ca_account`, its account key created (and saved) on first use."""
    if not ca_account.account_key:
        # Saved before registering: a crash in between must not lose the key the
        # CA will know the account by.
        ca_account.account_key = acme.new_account_key()
        ca_account.save(update_fields=["account_key"])
    settings_now = dict(
        directory_url=ca_account.directory_url, account_key_pem=ca_account.account_key,
        account_url=ca_account.account_url, contact_email=ca_account.contact_email,
        eab_kid=ca_account.eab_kid, eab_hmac_key=ca_account.eab_hmac_key,
        verify=settings.ACME_CA_BUNDLE or True, timeout=settings.ACME_HTTP_TIMEOUT,
    )
    return acme.connect_kept(**settings_now)


def remember_account(ca_account: CAAccount, ca: acme.CA,
                     run: RenewalRun | None = None) -> None:
    """Saves the account URL after a registration, and says so on the run."""
    if not ca.registered:
        return
    CAAccount.objects.filter(pk=ca_account.pk).update(account_url=ca.account_url)
    if run is not None:
        what = message("issue.account_registered_again" if ca_account.account_url
                       else "issue.account_registered")
        run.step(Step.ACCOUNT, StepStatus.DONE,
                 message("issue.account", what=what, url=ca.account_url))
    ca_account.account_url = ca.account_url
    # Remembered once: a later call of the same issuance records only a new registration.
    ca.registered = False


def issue(*, run: RenewalRun) -> CertificateVersion:
    """Issues `run.certificate` and stores the new version. Raises IssuanceFailed.

    A run picked up again after a crash resumes its ACME order with its key.
    """
    certificate = Certificate.objects.select_related("ca_account", "current_version").get(
        pk=run.certificate_id)
    held = Reservation.objects.filter(run_id=run.pk).select_related("ca_account").first()
    if held is not None and held.ca_account_id != certificate.ca_account_id:
        # The certificate moved to its fallback CA account after this run
        # reserved: the run orders where it reserved, which is the account it pays.
        certificate.ca_account = held.ca_account
    try:
        return _issue(run, certificate)
    except IssuanceFailed:
        raise
    except PortalError as exc:  # a seam's (the CA, a host, DNS) or a challenge's
        raise IssuanceFailed.from_seam(exc) from exc


def _issue(run: RenewalRun, certificate: Certificate) -> CertificateVersion:
    if certificate.key_on_host:
        # The key stays on the server: its agent sent the CSR, and the version
        # stored holds no key (docs/agent-protocol.md).
        key_pem, csr_pem = "", agent_wait.server_csr(run, certificate)
        csr = csr_pem.encode()
    else:
        key_pem = _order_key(run, certificate)
        csr = keys.make_csr(key_pem, certificate.names())
    ca = connect_ca(certificate.ca_account)
    try:
        # Registered here rather than by the order's first request, so that the
        # account step comes before the order's.
        ca.ensure_account()
    finally:
        remember_account(certificate.ca_account, ca, run)
    order = _place_or_resume_order(run, certificate, ca, csr)
    if order.body.status == messages.STATUS_PENDING:
        _validate(run, certificate, ca, order)
    run.step(Step.FINALIZE, StepStatus.STARTED)
    fullchain = ca.finalize(order, timeout=settings.ACME_VALIDATION_TIMEOUT)
    check_leaf(fullchain, key_pem, certificate.names(), csr_pem=csr.decode())
    run.step(Step.FINALIZE, StepStatus.DONE)
    version = _store_version(run, certificate, fullchain, key_pem, order.uri)
    policy.schedule_renewal(certificate, version, ca=ca, run=run)
    return version


def _order_key(run: RenewalRun, certificate: Certificate) -> str:
    if not run.private_key:
        run.private_key = keys.generate_private_key(certificate.key_type)
        run.save(update_fields=["private_key"])
        run.step(Step.KEY, StepStatus.DONE, certificate.get_key_type_display())
    return run.private_key


def _place_or_resume_order(run: RenewalRun, certificate: Certificate, ca: acme.CA,
                           csr: bytes) -> messages.OrderResource:
    if run.acme_order_url:
        order = _with_account_step(run, certificate, ca, lambda: ca.fetch_order(
            run.acme_order_url, csr))
        if order.body.status != messages.STATUS_INVALID:
            run.step(Step.ORDER, StepStatus.DONE, message("issue.order_resumed", url=order.uri))
            return order
    replaces = None
    if certificate.current_version is not None:  # selected with the certificate
        replaces = policy.ari_id(certificate.current_version)
    # Named only when there is one: an order without stays as it always was.
    profile = {"profile": name} if (name := _profile_to_order(run, certificate, ca)) else {}
    order = _with_account_step(run, certificate, ca, lambda: ca.new_order(
        csr, replaces=replaces, **profile))
    run.acme_order_url = order.uri
    run.save(update_fields=["acme_order_url"])
    run.step(Step.ORDER, StepStatus.DONE, order.uri)
    return order


def _profile_to_order(run: RenewalRun, certificate: Certificate, ca: acme.CA) -> str:
    """The certificate's profile, read from the certificate at every order, so
    that every renewal keeps it; left out (and said on the run) where the CA's
    directory no longer lists it, as after a move to a fallback CA."""
    if not certificate.profile:
        return ""
    if certificate.profile in ca.profiles:
        return certificate.profile
    run.step(Step.ORDER, StepStatus.STARTED,
             message("issue.profile_missing", profile=certificate.profile))
    return ""


def _with_account_step(run: RenewalRun, certificate: Certificate, ca: acme.CA,
                       call: Callable[[], T]) -> T:
    """`call`, then the account step if the CA had forgotten the account meanwhile."""
    try:
        return call()
    finally:
        remember_account(certificate.ca_account, ca, run)


def _validate(run: RenewalRun, certificate: Certificate, ca: acme.CA,
              order: messages.OrderResource) -> None:
    pending = ca.pending_challenges(order, certificate.challenge)
    publish = (challenges.publish_http01 if certificate.challenge == Challenge.HTTP_01
               else challenges.publish_dns01)
    with publish(run, certificate, ca, pending):
        for _authzr, challenge_body in pending:
            # A resumed order may hold challenges answered before a crash: the CA
            # is already checking those, and a second answer is an error.
            if challenge_body.status == messages.STATUS_PENDING:
                ca.answer(challenge_body)
        run.step(Step.VALIDATION, StepStatus.STARTED)
        try:
            ca.wait_for_validation(order, timeout=settings.ACME_VALIDATION_TIMEOUT)
        except acme.AcmeError as exc:
            # Said on the step as well as on the run: otherwise its page shows
            # the validation as still under way.
            run.step(Step.VALIDATION, StepStatus.FAILED, exc)
            raise
        run.step(Step.VALIDATION, StepStatus.DONE)


def _store_version(run: RenewalRun, certificate: Certificate, fullchain: str, key_pem: str,
                   order_url: str) -> CertificateVersion:
    version = CertificateVersion.from_pem(certificate=certificate, chain_pem=fullchain,
                                          private_key_pem=key_pem, acme_order_url=order_url)
    with transaction.atomic():
        version.save()
        # A CSR from the server is used up: its agent makes the next key.
        Certificate.objects.filter(pk=certificate.pk).update(
            current_version=version, expires_at=version.not_after,
            **({"pending_csr": ""} if certificate.key_on_host else {}))
        RenewalRun.objects.filter(pk=run.pk).update(version=version)
    certificate.current_version, certificate.expires_at = version, version.not_after
    run.version = version
    run.step(Step.STORE, StepStatus.DONE, message(
        "issue.stored", serial=version.serial_hex, until=version.not_after))
    return version


def check_leaf(fullchain: str, key_pem: str, names: list[str], *, csr_pem: str = "") -> None:
    """The issued leaf must be for the order's key and exactly the order's names
    before it is stored, charged and deployed: a CA (or anything between) that
    returns another certificate would otherwise have it installed and paid for.
    A mismatch is permanent: asking again gives no reason to expect better."""
    try:
        leaf = x509.load_pem_x509_certificates(fullchain.encode())[0]
    except (ValueError, IndexError) as exc:
        raise IssuanceFailed(message("issue.unreadable", error=exc), transient=False,
                             kind=FailureKind.CA_ERROR) from exc
    if not (keys.public_key_matches(key_pem, leaf) if key_pem
            else keys.certificate_matches_csr(csr_pem, leaf)):
        raise IssuanceFailed(message("issue.other_key"), transient=False,
                             kind=FailureKind.CA_ERROR)
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        issued = keys.san_names(sans)
    except x509.ExtensionNotFound:
        issued = set()
    ordered = {name.lower() for name in names}
    if issued != ordered:
        raise IssuanceFailed(
            message("issue.other_names", ordered=", ".join(sorted(ordered)),
                    issued=", ".join(sorted(issued)) or message("none")), transient=False,
            kind=FailureKind.CA_ERROR)


def run_issuance(*, certificate_id: int, trigger: str = RenewalRun.Trigger.MANUAL,
                 requested_by: User | None = None) -> RenewalRun:
    """A run that only issues (no deposit check, no charge, no deployment), so that
    issuance can be proved on its own; `renewal.run_inline` is the whole renewal.
    Returns the finished run."""
    opened = lifecycle.open_run(certificate_id=certificate_id, trigger=trigger,
                                requested_by=requested_by)
    run = lifecycle.claim(opened.pk) if opened is not None else None
    if run is None:
        raise ValueError(f"certificate {certificate_id} has a run under way already")
    try:
        issue(run=run)
    except IssuanceFailed as exc:
        lifecycle.finish(run, RenewalRun.Status.FAILED, **failure_fields(exc))
    else:
        lifecycle.to_deploying(run)  # nothing to deploy here
        lifecycle.finish(run, RenewalRun.Status.SUCCEEDED)
    finally:
        challenges.remove_leftovers(run)
    return run


def failure_fields(exc: PortalError) -> dict[str, Any]:
    """What a failed run records: the error in words, its class and kind, the CA's
    problem."""
    return {
        "failure_kind": exc.kind,
        **stored_fields("error", exc), "error_class": "transient" if exc.transient else "permanent",
        "problem": exc.problem,
        "retry_after": exc.retry_after,
    }

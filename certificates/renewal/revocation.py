"""Revoking a certificate version at its CA (RFC 8555 section 7.6), for the UI,
the API, `manage.py revoke` and incidents.

A version that a host still serves is not revoked: browsers would refuse the
site until the replacement arrives. Once a replacement is served it may be.
Only a key compromise forces it (``force``): the version is revoked at once
and its replacement started in the same call, whatever the renewal window
(the key is known to others; every minute counts).

The request is signed by the CA account's key. When the account is gone (the
CA no longer knows it, or it is not the account that ordered the version),
the version's own private key signs it instead. A version whose key was made
on the server by its agent has no key in the portal: then only the account
can sign, and the person is told so.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User
from certificates.messages import as_message, message
from certificates.models import (
    AuditEvent,
    CertificateVersion,
    Deployment,
    RenewalRun,
    RevocationReason,
)
from certificates.renewal import issuance, scheduling
from certificates.seams import acme
from certificates.seams.errors import PortalError

SignedBy = CertificateVersion.SignedBy
# The CA's answers that say this account may not revoke the certificate: the
# certificate's own key may still do it.
ACCOUNT_REFUSED = {
    "urn:ietf:params:acme:error:accountDoesNotExist",
    "urn:ietf:params:acme:error:unauthorized",
}
ALREADY_REVOKED = "urn:ietf:params:acme:error:alreadyRevoked"


class RevocationRefused(Exception):
    """Not revoked, for a reason a person can read (``str(exc)``), with the
    message's ``key`` and ``params`` for where it is stored (an incident's item)."""

    def __init__(self, reason: object = "") -> None:
        said = as_message(reason)
        self.key, self.params = said.key, said.params
        super().__init__(str(reason))


class AlreadyRevoked(RevocationRefused):
    pass


class StillServed(RevocationRefused):
    """Hosts still serve the version: revoke once the replacement is served."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts
        super().__init__(message("revoke.still_served", hosts=", ".join(hosts)))


class RevocationFailed(RevocationRefused):
    """The CA refused or could not be reached; the error says which."""

    def __init__(self, reason: object, *, error: PortalError | None = None) -> None:
        self.error = error
        super().__init__(reason)


@dataclass
class Revoked:
    version: CertificateVersion
    signed_by: str
    # Forced: the run that replaces the version (None if none could be opened).
    replacement: RenewalRun | None = None


def serving_hosts(version: CertificateVersion) -> list[str]:
    """The hosts whose last deployment is this version and that do not say they
    serve something else."""
    return list(Deployment.objects.filter(last_version=version).filter(
        Q(served=True) | Q(served__isnull=True, last_status=Deployment.Status.DEPLOYED))
        .order_by("host__name").values_list("host__name", flat=True))


def revoke_version(*, version_id: int, reason: int = RevocationReason.UNSPECIFIED,
                   by: User | None = None, force: bool = False,
                   request: HttpRequest | None = None,
                   with_certificate_key: bool = False) -> Revoked:
    """Revokes one version at its CA, marks it and writes the audit entry.
    Raises RevocationRefused (AlreadyRevoked, StillServed, RevocationFailed)."""
    version = CertificateVersion.objects.select_related(
        "certificate__ca_account", "certificate__organization").get(pk=version_id)
    if version.revoked_at is not None:
        raise AlreadyRevoked(message("revoke.already"))
    hosts = serving_hosts(version)
    if hosts and not force:
        raise StillServed(hosts)
    if force and reason != RevocationReason.KEY_COMPROMISE:
        raise RevocationRefused(message("revoke.force_needs_compromise"))
    signed_by = _send(version, reason, with_certificate_key=with_certificate_key)
    now = timezone.now()
    CertificateVersion.objects.filter(pk=version.pk, revoked_at__isnull=True).update(
        revoked_at=now, revocation_reason=reason, revoked_by=by,
        revocation_signed_by=signed_by)
    version.revoked_at, version.revocation_reason = now, reason
    version.revoked_by, version.revocation_signed_by = by, signed_by
    result = Revoked(version=version, signed_by=signed_by)
    if hosts:
        result.replacement = _start_replacement(version, by)
    AuditEvent.record(
        request, action=AuditEvent.Action.CERTIFICATE_REVOKED, certificate=version.certificate,
        user=by, params={
            "version": version.pk, "serial": version.serial_hex, "reason": reason,
            "forced": bool(hosts), "served_by": hosts, "signed_by": signed_by,
            "replacement_run": result.replacement.pk if result.replacement else None})
    return result


def _start_replacement(version: CertificateVersion, by: User | None) -> RenewalRun | None:
    """A key compromise: the replacement starts now, outside any window and past
    the daily number of paid renewals (the deposit reservation still bounds it)."""
    run = scheduling.start_run(certificate_id=version.certificate_id,
                               trigger=RenewalRun.Trigger.MANUAL, requested_by=by)
    if run is None:  # one is under way: it issues the replacement
        run = RenewalRun.objects.filter(certificate_id=version.certificate_id,
                                        status__in=RenewalRun.OPEN).first()
    return run


def _send(version: CertificateVersion, reason: int, *, with_certificate_key: bool) -> str:
    account = version.certificate.ca_account
    leaf = version.leaf_pem()
    key_pem = version.private_key
    if not with_certificate_key and account.account_url and account.account_key:
        try:
            issuance.connect_ca(account).revoke(leaf, reason)
            return SignedBy.ACCOUNT
        except acme.AcmeError as exc:
            if (exc.problem or {}).get("type") == ALREADY_REVOKED:
                return SignedBy.ACCOUNT  # revoked at the CA before (a call cut short)
            if (exc.problem or {}).get("type") not in ACCOUNT_REFUSED:
                raise RevocationFailed(message("revoke.ca_refused", error=exc), error=exc) from exc
            if not key_pem:
                raise RevocationFailed(message("revoke.no_key", error=exc),
                    error=exc) from exc
    elif not key_pem:
        raise RevocationFailed(message("revoke.not_registered"))
    try:
        acme.revoke_with_certificate_key(
            directory_url=account.directory_url, certificate_pem=leaf, key_pem=key_pem,
            reason=reason, verify=settings.ACME_CA_BUNDLE or True,
            timeout=settings.ACME_HTTP_TIMEOUT)
    except acme.AcmeError as exc:
        if (exc.problem or {}).get("type") != ALREADY_REVOKED:
            raise RevocationFailed(message("revoke.ca_refused", error=exc),
                                   error=exc) from exc
    return SignedBy.CERTIFICATE


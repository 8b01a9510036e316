"""Issuing a certificate over ACME, start to finish, recorded step by step on a
renewal run: key and CSR, order, challenges (HTTP-01 through the hosts' document
roots over SSH, or DNS-01 over RFC 2136), validation, finalization, the stored
version, and the next renewal time.

No database transaction is held while the CA, a host or a DNS server is talked to
(house rule 4): each write below is its own short statement.
"""

import datetime
import hashlib
import logging
import posixpath
import threading
import time
from contextlib import ExitStack, contextmanager

from acme import messages
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import acme, dns, keys, lifecycle, ssh
from .errors import FailureKind, PortalError
from .models import CAAccount, Certificate, CertificateVersion, Challenge, RenewalRun
from .steps import Step, StepStatus

logger = logging.getLogger(__name__)

CHALLENGE_DIR = ".well-known/acme-challenge"
SHORT_LIFETIME = datetime.timedelta(days=10)


class IssuanceFailed(PortalError):
    """Issuance stopped; `transient` tells whether retrying later can help, `kind`
    what stopped it (a seam's error keeps its own)."""

    kind = FailureKind.ISSUANCE_FAILED

    @classmethod
    def from_seam(cls, exc: PortalError) -> "IssuanceFailed":
        """From an error of the ACME, SSH or DNS seam, keeping its sorting and kind."""
        return cls(exc.message, transient=exc.transient, problem=exc.problem,
                   retry_after=exc.retry_after, kind=exc.kind)


SEAM_ERRORS = (acme.AcmeError, ssh.SSHError, dns.DNSUpdateError)


# A client per CA account and thread, kept for the next issuance: it has the
# CA's directory, a nonce and a connection already, where a new one would fetch
# the directory, ask for a nonce and shake hands first.
_kept_clients = threading.local()
KEEP_CLIENT_SECONDS = 300


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
    # Every setting is part of the key: an edited account never reuses a client.
    key = hashlib.sha256(repr(sorted(settings_now.items())).encode()).hexdigest()
    kept = getattr(_kept_clients, "by_key", None)
    if kept is None:
        kept = _kept_clients.by_key = {}
    now = time.monotonic()
    entry = kept.get(key)
    if entry is not None and now - entry[0] < KEEP_CLIENT_SECONDS:
        ca = entry[1]
        ca.registered = False  # what this issuance registers, if anything
        return ca
    for old in [k for k, (since, _ca) in kept.items() if now - since >= KEEP_CLIENT_SECONDS]:
        del kept[old]
    ca = acme.CA(**settings_now)
    kept[key] = (now, ca)
    return ca


def forget_kept_clients() -> None:
    """This thread's kept CA clients are dropped (tests start each from none)."""
    _kept_clients.by_key = {}


def remember_account(ca_account: CAAccount, ca: acme.CA, run=None) -> None:
    """Saves the account URL after a registration, and says so on the run."""
    if not ca.registered:
        return
    CAAccount.objects.filter(pk=ca_account.pk).update(account_url=ca.account_url)
    if run is not None:
        detail = (_("The CA no longer knew the account; registered again with the same key.")
                  if ca_account.account_url else _("Account registered."))
        run.step(Step.ACCOUNT, StepStatus.DONE, f"{detail} {ca.account_url}")
    ca_account.account_url = ca.account_url


def issue(*, run: RenewalRun) -> CertificateVersion:
    """Issues `run.certificate` and stores the new version. Raises IssuanceFailed.

    A run picked up again after a crash resumes its ACME order with its key.
    """
    certificate = Certificate.objects.select_related("ca_account", "current_version").get(
        pk=run.certificate_id)
    try:
        return _issue(run, certificate)
    except SEAM_ERRORS as exc:
        raise IssuanceFailed.from_seam(exc) from exc


def _issue(run, certificate):
    key_pem = _order_key(run, certificate)
    csr = keys.make_csr(key_pem, certificate.names())
    ca = connect_ca(certificate.ca_account)
    try:
        order = _place_or_resume_order(run, certificate, ca, csr)
    finally:
        remember_account(certificate.ca_account, ca, run)
    if order.body.status == messages.STATUS_PENDING:
        _validate(run, certificate, ca, order)
    run.step(Step.FINALIZE, StepStatus.STARTED)
    fullchain = ca.finalize(order, timeout=settings.ACME_VALIDATION_TIMEOUT)
    check_leaf(fullchain, key_pem, certificate.names())
    run.step(Step.FINALIZE, StepStatus.DONE)
    version = _store_version(run, certificate, fullchain, key_pem, order.uri)
    schedule_renewal(certificate, version, ca=ca, run=run)
    return version


def _order_key(run, certificate) -> str:
    if not run.private_key:
        run.private_key = keys.generate_private_key(certificate.key_type)
        run.save(update_fields=["private_key"])
        run.step(Step.KEY, StepStatus.DONE, certificate.get_key_type_display())
    return run.private_key


def _place_or_resume_order(run, certificate, ca, csr):
    if run.acme_order_url:
        order = ca.fetch_order(run.acme_order_url, csr)
        if order.body.status != messages.STATUS_INVALID:
            run.step(Step.ORDER, StepStatus.DONE, _("Resumed order %(url)s") % {"url": order.uri})
            return order
    replaces = None
    if certificate.current_version_id:
        replaces = ari_id(certificate.current_version)
    order = ca.new_order(csr, replaces=replaces)
    run.acme_order_url = order.uri
    run.save(update_fields=["acme_order_url"])
    run.step(Step.ORDER, StepStatus.DONE, order.uri)
    return order


def _validate(run, certificate, ca, order):
    pending = ca.pending_challenges(order, certificate.challenge)
    publish = _publish_http01 if certificate.challenge == Challenge.HTTP_01 else _publish_dns01
    with publish(run, certificate, ca, pending):
        for _authzr, challenge_body in pending:
            # A resumed order may hold challenges answered before a crash: the CA
            # is already checking those, and a second answer is an error.
            if challenge_body.status == messages.STATUS_PENDING:
                ca.answer(challenge_body)
        run.step(Step.VALIDATION, StepStatus.STARTED)
        ca.wait_for_validation(order, timeout=settings.ACME_VALIDATION_TIMEOUT)
        run.step(Step.VALIDATION, StepStatus.DONE)


@contextmanager
def _publish_http01(run, certificate, ca, pending):
    """Challenge files on every host of the certificate, removed afterwards even
    when validation fails; any host may be the one the name points at. Each
    host's session stays open while the CA validates, so that the files are
    removed through it rather than through a second login."""
    hosts = list(certificate.hosts.exclude(document_root=""))
    if not hosts:
        raise IssuanceFailed(
            _("HTTP-01 needs at least one target host with a document root; add one to "
              "%(name)s or use DNS-01.") % {"name": certificate.common_name}, transient=False)
    files = [ca.http01_resource(body) for _authzr, body in pending]
    with ExitStack() as sessions:
        written = []  # (host, its session, the paths written there)
        try:
            for host in hosts:
                directory = posixpath.join(host.document_root, CHALLENGE_DIR)
                session = sessions.enter_context(ssh.connect(host))
                paths = []
                written.append((host, session, paths))
                # A web application that writes in its document root could have
                # made .well-known a link leading anywhere: refused, not followed.
                session.makedirs_below(host.document_root, CHALLENGE_DIR)
                for token_path, content in files:
                    path = posixpath.join(host.document_root, token_path)
                    paths.append(path)
                    _placed(run, {"kind": "http01", "host": host.pk, "path": path})
                    session.write_file(path, content.encode(), mode=0o644)
                run.step(Step.CHALLENGE, StepStatus.DONE,
                         _("%(count)d challenge file(s) in %(dir)s")
                         % {"count": len(files), "dir": directory}, host=host)
            yield
        finally:
            _remove_challenge_files(run, written)


def _remove_challenge_files(run, written):
    for host, session, paths in written:
        if not paths:
            continue
        try:
            try:
                for path in paths:
                    session.remove(path, missing_ok=True)
            except ssh.SSHError:
                # The session may have dropped while the CA validated: log in again.
                with ssh.connect(host) as fresh:
                    for path in paths:
                        fresh.remove(path, missing_ok=True)
            _removed(run, [{"kind": "http01", "host": host.pk, "path": p} for p in paths])
            run.step(Step.CLEANUP, StepStatus.DONE, _("challenge files removed"), host=host)
        except ssh.SSHError as exc:
            # Not fatal: a stale token file reveals nothing and proves nothing.
            run.step(Step.CLEANUP, StepStatus.FAILED, str(exc), host=host)


def _dns_server(certificate) -> dns.Server:
    return dns.Server(
        address=certificate.dns_server, port=certificate.dns_port,
        key_name=certificate.tsig_key_name, secret=certificate.tsig_secret,
        algorithm=certificate.tsig_algorithm or "hmac-sha256",
        timeout=settings.DNS_UPDATE_TIMEOUT,
    )


@contextmanager
def _publish_dns01(run, certificate, ca, pending):
    """TXT records added (never replaced) and, afterwards, exactly they deleted."""
    server = _dns_server(certificate)
    added = []
    try:
        for authzr, body in pending:
            record, value = ca.dns01_record(body, authzr.body.identifier.value)
            _placed(run, {"kind": "dns01", "record": record, "value": value})
            dns.add_txt(server, record, value)
            added.append((record, value))
        expected = {}
        for record, value in added:
            expected.setdefault(record, set()).add(value)
        for record, values in expected.items():
            dns.wait_until_served(server, record, values,
                                  timeout=settings.DNS_PROPAGATION_TIMEOUT)
        run.step(Step.CHALLENGE, StepStatus.DONE, _("%(count)d TXT record(s) at %(server)s")
                 % {"count": len(added), "server": certificate.dns_server})
        yield
    finally:
        failures = []
        for record, value in added:
            try:
                dns.delete_txt(server, record, value)
            except dns.DNSUpdateError as exc:
                failures.append(str(exc))
            else:
                _removed(run, [{"kind": "dns01", "record": record, "value": value}])
        if added:
            run.step(Step.CLEANUP, StepStatus.FAILED if failures else StepStatus.DONE,
                     "; ".join(failures) or _("TXT records removed"))


# -- what a run placed outside the portal ------------------------------------------


def _placed(run, artefact: dict) -> None:
    """Recorded on the run before it is placed, so that a worker killed right
    after leaves a trace for whoever ends the run."""
    if artefact not in run.artefacts:
        run.artefacts = [*run.artefacts, artefact]
        RenewalRun.objects.filter(pk=run.pk).update(artefacts=run.artefacts)


def _removed(run, artefacts: list[dict]) -> None:
    run.artefacts = [a for a in run.artefacts if a not in artefacts]
    RenewalRun.objects.filter(pk=run.pk).update(artefacts=run.artefacts)


def remove_leftovers(run: RenewalRun) -> None:
    """Removes what the run placed and nobody removed: challenge files and TXT
    records of an attempt whose worker died while the CA validated (the attempt
    that takes the run up finds the order valid and publishes nothing)."""
    left = RenewalRun.objects.values_list("artefacts", flat=True).get(pk=run.pk) or []
    run.artefacts = list(left)
    if not left:
        return
    certificate = Certificate.objects.get(pk=run.certificate_id)
    by_host: dict[int, list[str]] = {}
    for artefact in left:
        if artefact.get("kind") == "http01":
            by_host.setdefault(artefact["host"], []).append(artefact["path"])
    for host in certificate.hosts.filter(pk__in=by_host):
        try:
            with ssh.connect(host) as session:
                for path in by_host[host.pk]:
                    session.remove(path, missing_ok=True)
        except ssh.SSHError as exc:
            run.step(Step.CLEANUP, StepStatus.FAILED, str(exc), host=host)
            continue
        _removed(run, [{"kind": "http01", "host": host.pk, "path": p} for p in by_host[host.pk]])
        run.step(Step.CLEANUP, StepStatus.DONE, _("challenge files removed"), host=host)
    records = [a for a in left if a.get("kind") == "dns01"]
    if records:
        server = _dns_server(certificate)
        for artefact in records:
            try:
                dns.delete_txt(server, artefact["record"], artefact["value"])
            except dns.DNSUpdateError as exc:
                run.step(Step.CLEANUP, StepStatus.FAILED, str(exc))
                continue
            _removed(run, [artefact])
        run.step(Step.CLEANUP, StepStatus.DONE, _("TXT records removed"))


def _store_version(run, certificate, fullchain, key_pem, order_url) -> CertificateVersion:
    version = CertificateVersion.from_pem(certificate=certificate, chain_pem=fullchain,
                                          private_key_pem=key_pem, acme_order_url=order_url)
    with transaction.atomic():
        version.save()
        Certificate.objects.filter(pk=certificate.pk).update(
            current_version=version, expires_at=version.not_after)
        RenewalRun.objects.filter(pk=run.pk).update(version=version)
    certificate.current_version, certificate.expires_at = version, version.not_after
    run.version = version
    run.step(Step.STORE, StepStatus.DONE, _("serial %(serial)s, valid until %(until)s")
             % {"serial": version.serial, "until": version.not_after.isoformat()})
    return version


def check_leaf(fullchain: str, key_pem: str, names: list[str]) -> None:
    """The issued leaf must be for the order's key and exactly the order's names
    before it is stored, charged and deployed: a CA (or anything between) that
    returns another certificate would otherwise have it installed and paid for.
    A mismatch is permanent: asking again gives no reason to expect better."""
    from cryptography import x509

    try:
        leaf = x509.load_pem_x509_certificates(fullchain.encode())[0]
    except (ValueError, IndexError) as exc:
        raise IssuanceFailed(_("The CA returned no readable certificate: %(error)s")
                             % {"error": exc}, transient=False, kind=FailureKind.CA_ERROR) from exc
    if not keys.public_key_matches(key_pem, leaf):
        raise IssuanceFailed(_("The CA returned a certificate for another key than the "
                               "order's; it was not stored."), transient=False,
                             kind=FailureKind.CA_ERROR)
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        issued = {name.lower() for name in sans.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        issued = set()
    ordered = {name.lower() for name in names}
    if issued != ordered:
        raise IssuanceFailed(
            _("The CA returned a certificate for other names than the order's "
              "(ordered: %(ordered)s; issued: %(issued)s); it was not stored.")
            % {"ordered": ", ".join(sorted(ordered)),
               "issued": ", ".join(sorted(issued)) or _("none")}, transient=False,
            kind=FailureKind.CA_ERROR)


def ari_id(version: CertificateVersion) -> str | None:
    """The version's ACME Renewal Information id, or None when it has none: the
    id is made of the authority key identifier, which a certificate imported
    from elsewhere may lack; such a renewal names no certificate it replaces."""
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(version.leaf_pem().encode())
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return acme.ari_certificate_id(leaf) if aki.key_identifier else None


def remaining_at_renewal(lifetime: datetime.timedelta) -> datetime.timedelta:
    """A third of the lifetime (half, for lifetimes of ten days or less)."""
    return lifetime / 2 if lifetime <= SHORT_LIFETIME else lifetime / 3


def renewal_time_by_lifetime(version: CertificateVersion) -> datetime.datetime:
    """When a third of the lifetime remains (half, for lifetimes of ten days or less)."""
    return version.not_after - remaining_at_renewal(version.lifetime())


def schedule_renewal(certificate, version, *, ca=None, run=None, now=None):
    """Sets renew_after from the CA's ARI window where it offers one, else by
    lifetime; and when to ask the CA for its window again."""
    now = now or timezone.now()
    window = None
    if ca is not None:
        try:
            window = ca.renewal_window(version.leaf_pem())
        except acme.AcmeError as exc:
            logger.warning("ARI lookup for %s failed: %s", certificate, exc)
    if window is not None:
        renew_after = max(window.random_time(), now)
        next_check = now + datetime.timedelta(seconds=window.retry_after_seconds)
        how = _("inside the CA's renewal window %(start)s – %(end)s") % {
            "start": window.start.isoformat(), "end": window.end.isoformat()}
    else:
        renew_after, next_check = renewal_time_by_lifetime(version), None
        how = _("when a third of the lifetime remains (half for ten days or less)")
    Certificate.objects.filter(pk=certificate.pk).update(
        renew_after=renew_after, ari_next_check_at=next_check)
    certificate.renew_after, certificate.ari_next_check_at = renew_after, next_check
    if run is not None:
        run.step(Step.SCHEDULE, StepStatus.DONE, _("next renewal %(when)s, %(how)s")
                 % {"when": renew_after.isoformat(), "how": how})
    return renew_after


def run_issuance(*, certificate_id, trigger=RenewalRun.Trigger.MANUAL, requested_by=None):
    """A run that only issues (no deposit check, no charge, no deployment), so that
    issuance can be proved on its own; `renewal.run_inline` is the whole renewal.
    Returns the finished run."""
    opened = lifecycle.open_run(certificate_id=certificate_id, trigger=trigger,
                                requested_by=requested_by)
    run = lifecycle.claim(opened.pk)
    try:
        issue(run=run)
    except IssuanceFailed as exc:
        lifecycle.finish(run, RenewalRun.Status.FAILED, **failure_fields(exc))
    else:
        lifecycle.to_deploying(run)  # nothing to deploy here
        lifecycle.finish(run, RenewalRun.Status.SUCCEEDED)
    finally:
        remove_leftovers(run)
    return run


def failure_fields(exc: PortalError) -> dict:
    """What a failed run records: the error in words, its class and kind, the CA's
    problem."""
    return {
        "failure_kind": exc.kind,
        "error": str(exc), "error_class": "transient" if exc.transient else "permanent",
        "problem": exc.problem,
        "retry_after": exc.retry_after,
    }

"""Short-lived certificates for real: Pebble issues two-minute certificates, a
real worker and beat renew them with nobody acting, and the host never serves
an expired one -- through a worker killed mid-renewal and restarted, and a CA
outage shorter than half the lifetime. Each TLS handshake is checked against
the clock while it runs."""

import datetime
import signal
import ssl
import threading
import time
from decimal import Decimal

from cryptography import x509
from django.utils import timezone

from certificates.models import CertificateVersion, RenewalRun
from certificates.tests.factories import ca_account, http01_certificate, portal_host
from certificates.tests.waiting import wait_for

LIFETIME = 120  # seconds; renewed when half remains


class ServedLeafWatch:
    """Handshakes with the host every 0.2 s from a thread of its own, and
    records each moment the leaf it served had expired."""

    def __init__(self, target_host):
        self.host, self.stop = target_host, threading.Event()
        self.expired: list[tuple[datetime.datetime, datetime.datetime]] = []  # (at, notAfter)
        self.handshakes = 0
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _leaf(self) -> x509.Certificate:
        import socket

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with (socket.create_connection((self.host.address, self.host.tls_port), timeout=5) as raw,
              context.wrap_socket(raw, server_hostname=self.host.sni_name) as tls):
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))

    def _watch(self) -> None:
        while not self.stop.wait(0.2):
            try:
                leaf = self._leaf()
            except OSError:
                continue  # a reload in progress; the next handshake tells
            at = datetime.datetime.now(datetime.UTC)
            self.handshakes += 1
            if leaf.not_valid_after_utc < at:
                self.expired.append((at, leaf.not_valid_after_utc))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def longest_gap(self) -> datetime.timedelta:
        """From a leaf's expiry to the last handshake that still served it."""
        return max((at - not_after for at, not_after in self.expired),
                   default=datetime.timedelta(0))


def history(cert):
    return list(RenewalRun.objects.filter(certificate=cert).order_by("pk").values_list(
        "pk", "status", "created_at", "started_at", "finished_at", "attempts", "error"))


def versions(cert):
    return list(CertificateVersion.objects.filter(certificate=cert).order_by("pk"))


def served_version(target_host, cert, count):
    """The ``count``-th version, once it is issued and served."""
    def check():
        made = versions(cert)
        if len(made) < count:
            return None
        version = made[count - 1]
        return version if target_host.served_leaf_sha256() == version.fingerprint_sha256 else None
    return check


def served_version_of(target_host, run):
    """The version ``run`` issued, once the run has ended and the host serves it."""
    def check():
        run.refresh_from_db()
        version = run.version
        if run.status in RenewalRun.OPEN or version is None:
            return None
        return version if target_host.served_leaf_sha256() == version.fingerprint_sha256 else None
    return check


def test_short_lived_certificates_renew_by_themselves_and_are_never_served_expired(
    celery_processes, organization, pebble_factory, target_host, settings
):
    ca_server = pebble_factory(validity_seconds=LIFETIME)
    settings.ACME_CA_BUNDLE = str(ca_server.ca_bundle)
    env = {"ACME_CA_BUNDLE": ca_server.ca_bundle, "DEPLOY_TLS_GRACE_SECONDS": 10,
           "RENEWAL_RETRY_MIN_SECONDS": 3}
    ca = ca_account(organization, directory_url=ca_server.directory_url, price=Decimal("0"))
    cert = http01_certificate(organization, ca, portal_host(organization, target_host),
                              [target_host.name])
    worker = celery_processes.worker(**env)
    # Scans and recovery every 2 s: one message a second, which the file-system
    # broker's one worker keeps up with (at 1 s they expire waiting in its queue).
    beat = celery_processes.beat(RENEWAL_SCAN_SECONDS=2)

    first = wait_for(served_version(target_host, cert, 1), 60, "the first issuance", worker)
    # Pebble counts the last second in: notAfter is notBefore + period - 1 s.
    assert abs(first.lifetime().total_seconds() - LIFETIME) <= 1
    with ServedLeafWatch(target_host) as watch:
        # Renewed with nobody acting, when half the lifetime remains.
        second = wait_for(served_version(target_host, cert, 2), LIFETIME, "the renewal",
                          worker, beat)
        renewal_run = RenewalRun.objects.filter(certificate=cert).order_by("pk")[1]
        fraction = (renewal_run.created_at - first.not_before) / first.lifetime()
        assert renewal_run.version_id == second.pk, history(cert)
        assert 0.5 <= fraction < 0.6, (fraction, history(cert), worker.log.read_text()[-6000:])

        # (a) The worker is killed once the next renewal has its ACME order, and
        # started again at once: it takes the run over from the dead one. Pebble
        # validates in a tenth of a second, so the run is watched closely; a
        # renewal that slips through anyway is simply followed by the next one,
        # and the kill meets that (the versions are counted from the killed run).
        def in_flight():
            run = RenewalRun.objects.filter(certificate=cert).order_by("-pk").first()
            return run if run.version_id is None and run.acme_order_url else None
        killed = wait_for(in_flight, LIFETIME, "the next renewal's ACME order", worker,
                          every=0.02)
        celery_processes.kill(worker, signal.SIGKILL)
        killed_at = timezone.now()
        worker = celery_processes.worker(**env)
        third = wait_for(served_version_of(target_host, killed), 60,
                         "the renewal taken over", worker)
        taken_over_in = timezone.now() - killed_at
        assert killed.status == RenewalRun.Status.SUCCEEDED, history(cert)
        # The one it replaced was still valid when it was served.
        serving = CertificateVersion.objects.filter(certificate=cert, pk__lt=third.pk).latest("pk")
        assert third.not_before < serving.not_after

        # (b) The CA is down from a few seconds before the next renewal time for
        # 35 s (under half the lifetime); the retries come often enough.
        cert.refresh_from_db()
        wait_for(lambda: timezone.now() >= cert.renew_after - datetime.timedelta(seconds=5),
                 LIFETIME, "the time before the next renewal")
        issued_before = len(versions(cert))
        ca_server.stop()
        time.sleep(35)
        ca_server.start()
        fourth = wait_for(served_version(target_host, cert, issued_before + 1), 60,
                          "the renewal after the CA came back", worker, beat)
        failed = RenewalRun.objects.filter(certificate=cert, status=RenewalRun.Status.FAILED)
        assert failed.exists()  # the outage was met, and retried

    assert fourth.not_before < third.not_after
    assert watch.handshakes > 500
    assert watch.expired == [], f"served expired for {watch.longest_gap()}"
    print(f"\nrenewed at {fraction:.3f} of the lifetime; killed run served again "
          f"{taken_over_in.total_seconds():.1f} s after the kill (attempt {killed.attempts}); "
          f"{failed.count()} failed "
          f"tries during the outage; margin left at the last renewal "
          f"{(third.not_after - fourth.not_before).total_seconds():.1f} s; "
          f"{watch.handshakes} handshakes, longest served-expired gap {watch.longest_gap()}")

"""Scale of the data: a generator (certificates, hosts, renewal runs, and
certificates managed elsewhere with their monitored endpoints) and the server
time and SQL query count of the due-renewal scan and the pages at that size,
on PostgreSQL. Prints the figures.

    .venv/bin/python -m bench.data_scale --certificates 10000 --hosts 2000 --runs 100000 \
        --unmanaged 10000
"""

import argparse
import datetime
import random
import statistics
import time
from decimal import Decimal

from .env import configure, machine, reset_database

STEPS = ("key", "order", "challenge", "validation", "finalize", "store", "connect",
         "upload", "reload", "tls_check")


# -- the generator ------------------------------------------------------------------


def _chain_and_key():
    """One real leaf + issuer chain and key, shared by every version: parsing
    is what the pages do with it, and one is as good as another for that."""
    from certificates.tests.pki import self_signed

    key_pem, cert_pem = self_signed("bench.example.test")
    return cert_pem + cert_pem, key_pem  # a leaf and a "bundle", as a chain has


def generate(*, certificates: int, hosts: int, runs: int, unmanaged: int = 0,
             seed: int = 8) -> dict:
    """One organisation holding ``certificates`` certificates on ``hosts`` hosts
    (1-3 each), with ``runs`` renewal runs between them, the latest run of each
    certificate with its steps. About 1 % are due now and 2 % failing."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Membership, Organization, Role
    from certificates.models import (
        CAAccount,
        Certificate,
        CertificateVersion,
        Deployment,
        DepositEntry,
        RenewalRun,
        RenewalStep,
        TargetHost,
    )
    from certificates.tests.pki import self_signed

    rng = random.Random(seed)
    now = timezone.now()
    day = datetime.timedelta(days=1)
    started = time.monotonic()
    organization = Organization.objects.create(name="Scale", slug="scale")
    user = get_user_model().objects.create_user(username="bench-owner", password="x" * 20,
                                                email="owner@example.test")
    Membership.objects.create(user=user, organization=organization, role=Role.OWNER)
    # An owner must have a second factor, or every page would send them to set one up.
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    TOTP.activate(user, generate_totp_secret())
    cas = [CAAccount.objects.create(organization=organization, name=f"CA {i}",
                                    directory_url=f"https://ca{i}.example.test/dir",
                                    contact_email="ops@example.test", price=Decimal("1100"),
                                    currency="JPY", low_balance_threshold=Decimal("5000"))
           for i in range(3)]
    for ca in cas:
        DepositEntry.objects.create(ca_account=ca, kind=DepositEntry.Kind.TOP_UP,
                                    amount=Decimal("1000000"), reference=f"top-up-{ca.pk}")
    login_key = self_signed()[0]  # any PEM: these hosts are never connected to
    host_rows = TargetHost.objects.bulk_create([
        TargetHost(organization=organization, name=f"web{i:05d}.example.test",
                   address=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", ssh_port=22,
                   ssh_user="deploy", login_key=login_key,
                   private_key_path="/etc/ssl/private/{name}.key",
                   certificate_path="/etc/ssl/certs/{name}.crt",
                   ca_bundle_path="/etc/ssl/certs/{name}.ca", fullchain_path="",
                   document_root="/var/www/html", backup_dir="/var/backups/certs")
        for i in range(hosts)], batch_size=2000)
    cert_rows = []
    for i in range(certificates):
        expires = now + rng.uniform(-5, 400) * day
        renew_after = expires - 30 * day
        failing = rng.random() < 0.02
        cert_rows.append(Certificate(
            organization=organization, ca_account=cas[i % len(cas)],
            common_name=f"site{i:06d}.example.test",
            sans=[f"site{i:06d}.example.test", f"www.site{i:06d}.example.test"],
            renew_after=renew_after, expires_at=expires,
            failure_count=rng.randint(1, 4) if failing else 0,
            next_attempt_at=now + rng.uniform(-0.1, 1) * day if failing else None,
            auto_renew=rng.random() > 0.03))
    cert_rows = Certificate.objects.bulk_create(cert_rows, batch_size=2000)
    chain, key = _chain_and_key()
    template = CertificateVersion.from_pem(certificate=cert_rows[0], chain_pem=chain,
                                           private_key_pem=key)
    versions = CertificateVersion.objects.bulk_create([
        CertificateVersion(certificate=c, chain_pem=chain, private_key=key,
                           serial=f"{c.pk:032x}", not_before=c.expires_at - 90 * day,
                           not_after=c.expires_at, fingerprint_sha256=template.fingerprint_sha256,
                           issuer=template.issuer) for c in cert_rows], batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Certificate._meta.db_table} c SET current_version_id = v.id "
            f"FROM {CertificateVersion._meta.db_table} v WHERE v.certificate_id = c.id")
    deployments = []
    for c, v in zip(cert_rows, versions, strict=True):
        for host in rng.sample(host_rows, rng.randint(1, 3)):
            served = rng.random() > 0.01
            deployments.append(Deployment(
                certificate=c, host=host, last_version=v,
                last_status=Deployment.Status.DEPLOYED if served else Deployment.Status.FAILED,
                served=served, served_fingerprint=v.fingerprint_sha256,
                last_deployed_at=v.not_before, last_checked_at=v.not_before))
    Deployment.objects.bulk_create(deployments, batch_size=5000)
    per_cert = max(runs // max(certificates, 1), 1)
    run_rows = []
    for c, v in zip(cert_rows, versions, strict=True):
        for k in range(per_cert):
            created = now - (k * 30 + rng.uniform(0, 29)) * day
            failed = c.failure_count and k == 0 or rng.random() < 0.03
            run_rows.append(RenewalRun(
                certificate=c, trigger=RenewalRun.Trigger.SCHEDULE,
                status=RenewalRun.Status.FAILED if failed else RenewalRun.Status.SUCCEEDED,
                error="Connection refused by the CA" if failed else "",
                error_class="transient" if failed else "",
                version=None if failed or k else v,
                created_at=created, started_at=created,
                finished_at=created + datetime.timedelta(seconds=rng.uniform(3, 20)),
                attempts=1, log="h: deployed\n"))
            if len(run_rows) >= 10000:
                RenewalRun.objects.bulk_create(run_rows)
                run_rows = []
    RenewalRun.objects.bulk_create(run_rows)
    latest = RenewalRun.objects.order_by("certificate_id", "-created_at").distinct(
        "certificate_id").values_list("pk", "created_at")
    steps = []
    for run_id, at in latest.iterator():
        steps += [RenewalStep(run_id=run_id, name=name, status="done", detail="ok",
                              at=at + datetime.timedelta(seconds=j)) for j, name in
                  enumerate(STEPS)]
        if len(steps) >= 20000:
            RenewalStep.objects.bulk_create(steps)
            steps = []
    RenewalStep.objects.bulk_create(steps)
    _unmanaged(organization, unmanaged, seed)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"user": user, "organization": organization, "seconds": time.monotonic() - started,
            "certificates": Certificate.objects.count(), "hosts": TargetHost.objects.count(),
            "runs": RenewalRun.objects.count(), "deployments": Deployment.objects.count(),
            "steps": RenewalStep.objects.count()}


def _unmanaged(organization, count: int, seed: int) -> None:
    """Imported and discovered certificates, a tenth served at a monitored endpoint."""
    from certificates.tests.factories import unmanaged_rows

    if count:
        unmanaged_rows(organization, count, seed=seed)


def add_bare_certificates(organization, total: int) -> None:
    """More certificates, not due, until there are ``total``: for the scan alone."""
    from django.db import connection
    from django.utils import timezone

    from certificates.models import CAAccount, Certificate

    have = Certificate.objects.count()
    ca = CAAccount.objects.filter(organization=organization).first()
    now = timezone.now()
    rows = (Certificate(organization=organization, ca_account=ca,
                        common_name=f"bare{i:06d}.example.test",
                        sans=[f"bare{i:06d}.example.test"],
                        renew_after=now + datetime.timedelta(days=10 + i % 300),
                        expires_at=now + datetime.timedelta(days=40 + i % 300))
            for i in range(have, total))
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= 5000:
            Certificate.objects.bulk_create(batch)
            batch = []
    Certificate.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# -- measuring ----------------------------------------------------------------------


class Rollback(Exception):
    pass


def timed(call, repeat: int) -> dict:
    """Median and p95 wall time of ``call`` (after one warm-up), and its query count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()
    with CaptureQueriesContext(connection) as queries:
        status = call()
    count = len(queries)  # now: a later request's request_started clears the log
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return {"median": statistics.median(times) * 1000, "p95": p95 * 1000,
            "queries": count, "status": status}


def scan_measures(repeat: int) -> dict[str, dict]:
    """The due query alone, and scan() whole (it opens runs: rolled back each time)."""
    from django.db import transaction
    from django.db.models.functions import Coalesce

    from certificates import renewal

    def due_ids():
        ids = list(renewal.due_certificates().order_by(
            Coalesce("next_attempt_at", "renew_after").asc(nulls_first=True)
        ).values_list("pk", flat=True)[:500])
        return f"{len(ids)} due"

    def scan():
        opened = []
        try:
            with transaction.atomic():  # on_commit never fires: nothing is enqueued
                opened = renewal.scan(limit=500)
                raise Rollback
        except Rollback:
            pass
        return f"{len(opened)} runs opened"

    return {"scan: due query": timed(due_ids, repeat),
            "scan: whole, opening runs": timed(scan, max(repeat // 4, 3))}


def _url(names: list[str], *args) -> str | None:
    from django.urls import NoReverseMatch, reverse

    for name in names:
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            continue
    return None


def _inventory_size() -> int:
    from certificates.models import Certificate, InventoryCertificate

    return Certificate.objects.count() + InventoryCertificate.objects.count()


def page_measures(user, repeat: int) -> dict[str, dict]:
    from django.test import Client

    from certificates.models import Certificate, TargetHost

    client = Client()
    client.force_login(user)
    certificate = Certificate.objects.filter(current_version__isnull=False).order_by("pk")[
        Certificate.objects.count() // 2]
    host = TargetHost.objects.order_by("pk").first()
    try:
        from certificates.views.common import PAGE_SIZE as page_size
    except ImportError:
        page_size = 50
    last_page = str(-(-Certificate.objects.count() // page_size))
    certificates_url = _url(["certificates:certificates", "certificates:certificate_list"])
    pages = {
        "dashboard": (_url(["certificates:dashboard"]), {}),
        "certificate list, first page": (certificates_url, {}),
        "certificate list, last page": (certificates_url, {"page": last_page}),
        "certificate list, filtered (expiring 30 d)": (certificates_url, {"expiring": "30"}),
        "certificate list, filtered (host)": (certificates_url,
                                              {"host": str(host.pk) if host else ""}),
        "certificate list, searched": (certificates_url, {"q": "site0042"}),
        "certificate detail": (_url(["certificates:certificate"], certificate.pk), {}),
        "API certificate list": (_url(["api:certificate-list"]), {}),
        # The inventory: managed and unmanaged certificates in one list.
        "inventory, first page": (_url(["certificates:inventory"]), {}),
        "inventory, last page": (_url(["certificates:inventory"]),
                                 {"page": str(-(-_inventory_size() // page_size))}),
        "inventory, managed elsewhere, expiring 30 d": (
            _url(["certificates:inventory"]), {"source": "elsewhere", "expiring": "30"}),
        "inventory, searched": (_url(["certificates:inventory"]), {"q": "u0042"}),
        "monitored endpoints, with problems": (_url(["certificates:endpoints"]),
                                               {"result": "problem"}),
        "API inventory list": (_url(["api:inventory-list"]), {}),
    }
    results = {}
    for label, (url, params) in pages.items():
        if url is None:
            results[label] = {"skipped": "no such URL name yet"}
            continue

        def get(url=url, params=params):
            response = client.get(url, params, secure=True, HTTP_ACCEPT="text/html")
            if response.status_code != 200:
                raise RuntimeError(f"{url} {params}: {response.status_code}")
            return response.status_code

        try:
            results[label] = timed(get, repeat)
        except RuntimeError as exc:
            results[label] = {"skipped": str(exc)}
    return results


def profile_page(user, label: str, top: int = 15) -> None:
    """cProfile of one request of ``label`` (a key of page_measures), own time first."""
    import cProfile
    import io
    import pstats

    from django.test import Client

    urls = {"dashboard": ["certificates:dashboard"],
            "certificate list": ["certificates:certificates", "certificates:certificate_list"]}
    url = _url(urls.get(label, [label]))
    if url is None:
        print(f"   (no page {label!r} to profile)")
        return
    client = Client()
    client.force_login(user)
    client.get(url, secure=True)
    profile = cProfile.Profile()
    profile.enable()
    client.get(url, secure=True)
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    print(f"-- {label}: one request at full size, top {top} by own time --")
    print(text[text.find("   ncalls"):].rstrip())


def _print(results: dict[str, dict], small: dict[str, dict] | None) -> None:
    head = "queries" + (" (small)" if small else "")
    print(f"   {'what':46} {'median ms':>10} {'p95 ms':>8} {head:>16}")
    for label, r in results.items():
        if "skipped" in r:
            print(f"   {label:46} skipped: {r['skipped']}")
            continue
        queries = str(r["queries"])
        if small and label in small and "queries" in small[label]:
            queries += f" ({small[label]['queries']})"
        print(f"   {label:46} {r['median']:10.1f} {r['p95']:8.1f} {queries:>16}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certificates", type=int, default=10000)
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=100000)
    parser.add_argument("--unmanaged", type=int, default=10000,
                        help="certificates managed elsewhere (imported, discovered)")
    parser.add_argument("--scan-certificates", type=int, default=100000,
                        help="then add bare certificates up to this many and time the scan "
                             "again (0: skip)")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument("--profile", default="dashboard",
                        help="profile one request of this page at full size ('' for none)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    configure(static=True)
    print(f"== Scale of the data ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
          "PostgreSQL)")
    print(f"   machine: {machine()}")
    # Query counts at 1 % of the size first: they must not grow with the rows.
    reset_database()
    small_data = generate(certificates=max(args.certificates // 100, 60),
                          hosts=max(args.hosts // 100, 5), runs=max(args.runs // 100, 600),
                          unmanaged=max(args.unmanaged // 100, 60) if args.unmanaged else 0)
    small = {**scan_measures(3), **page_measures(small_data["user"], 3)}
    reset_database()
    data = generate(certificates=args.certificates, hosts=args.hosts, runs=args.runs,
                    unmanaged=args.unmanaged)
    print(f"   generated {data['certificates']} certificates, {data['hosts']} hosts, "
          f"{data['deployments']} deployments, {data['runs']} runs, {data['steps']} steps, "
          f"{args.unmanaged} certificates managed elsewhere "
          f"in {data['seconds']:.0f} s; small set for query counts: "
          f"{small_data['certificates']} certificates, {small_data['runs']} runs")
    results = {**scan_measures(args.repeat), **page_measures(data["user"], args.repeat)}
    _print(results, small)
    if args.profile:
        profile_page(data["user"], args.profile)
    if args.scan_certificates > args.certificates:
        add_bare_certificates(data["organization"], args.scan_certificates)
        from certificates.models import Certificate

        print(f"   scan over {Certificate.objects.count()} certificates:")
        big = scan_measures(args.repeat)
        _print(big, None)
        results.update({f"{k} ({args.scan_certificates})": v for k, v in big.items()})
    return results


if __name__ == "__main__":
    main()

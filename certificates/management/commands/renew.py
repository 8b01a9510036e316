"""`manage.py renew <certificate id or common name> [--force]`: renew one
certificate now, in this process (deposit reservation, issuance, charge,
deployment to every host), printing each step as it happens and the result.
Before the certificate's renewal window it needs --force, which the audit log
records."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from certificates.models import Certificate, RenewalRun, RenewalStep
from certificates.models.runs import step_recorded
from certificates.renewal import run_inline
from certificates.renewal.limits import Archived, NotDue, PaidIssuanceLimit, record_forced

from ..local_times import organization_zone, step_detail


class Command(BaseCommand):
    help = "Issue or renew one certificate now, printing each step."

    def add_arguments(self, parser):
        parser.add_argument("certificate", help="certificate id or common name")
        parser.add_argument("--force", action="store_true",
                            help="renew even before the renewal window (issues and charges "
                                 "again for a certificate that is still valid)")

    def handle(self, *args, certificate, force=False, **options):
        target = find_certificate(certificate)
        zone = organization_zone(target.organization)

        def local(value):
            return timezone.localtime(value, zone)

        self.stdout.write(f"Renewing {target.common_name} ({', '.join(target.names())}) "
                          f"at {target.ca_account.directory_url}")

        def echo(sender, step, **kwargs):
            if step.run.certificate_id != target.pk:
                return
            where = f" [{step.host}]" if step.host_id else ""
            self.stdout.write(f"  {local(step.at):%H:%M:%S} {step.get_name_display()}{where}: "
                              f"{step.get_status_display()} "
                              f"{step_detail(step.detail_message, zone)}".rstrip())

        step_recorded.connect(echo, sender=RenewalStep, weak=False)
        try:
            run = run_inline(certificate_id=target.pk, trigger=RenewalRun.Trigger.MANUAL,
                             force=force)
        except NotDue as exc:
            version, account = target.current_version, target.ca_account
            raise CommandError(
                f"{target.common_name} is valid until {local(version.not_after):%Y-%m-%d %H:%M} "
                f"and renews by itself from {local(target.renew_after):%Y-%m-%d %H:%M} "
                f"({zone.key}); renewing "
                f"now issues and charges {account.price} {account.currency} again. "
                f"Add --force to renew anyway.") from exc
        except Archived as exc:
            raise CommandError(f"{target.common_name} is archived: restore it first.") from exc
        except PaidIssuanceLimit as exc:
            raise CommandError(
                f"This organisation has started {exc.limit} paid renewals in the last 24 "
                f"hours (PAID_ISSUANCES_PER_DAY); this one was not started.") from exc
        finally:
            step_recorded.disconnect(echo, sender=RenewalStep)
        if run is None:
            raise CommandError("A renewal of this certificate is already running.")
        if run.forced:
            record_forced(None, certificate=target, run=run)
        if run.status != RenewalRun.Status.SUCCEEDED:
            raise CommandError(f"Renewal ended as {run.get_status_display()} "
                               f"({run.error_class}): {run.error}")
        version = run.version
        self.stdout.write(self.style.SUCCESS(
            f"Issued serial {version.serial_hex}, valid {local(version.not_before):%Y-%m-%d} to "
            f"{local(version.not_after):%Y-%m-%d} ({zone.key}); "
            f"SHA-256 {version.fingerprint_sha256}"))


def find_certificate(ref: str) -> Certificate:
    queryset = Certificate.objects.select_related("ca_account", "current_version",
                                                  "organization")
    if ref.isdigit():
        found = queryset.filter(pk=int(ref)).first()
        if found:
            return found
    matches = list(queryset.filter(common_name=ref.lower().rstrip("."))[:2])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CommandError(f"Several certificates are named {ref}; give the id.")
    raise CommandError(f"No certificate with id or common name {ref!r}.")

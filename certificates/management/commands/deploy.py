"""manage.py deploy <certificate> [--host <host>]: install the current version now,
as a deploy-only run (with steps and history like any other), printing each step."""

import threading

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from certificates import renewal
from certificates.hosts.deployment import NothingToDeploy
from certificates.models import Certificate, RenewalRun, RenewalStep
from certificates.models.runs import step_recorded

from ..local_times import organization_zone, step_detail
from ..lookup import by_id_or_name


class Command(BaseCommand):
    help = gettext_lazy("Deploy a certificate's current version to one of its hosts or "
                        "all of them, printing each step.")

    def add_arguments(self, parser):
        parser.add_argument("certificate", help=_("id or common name of the certificate"))
        parser.add_argument("--host", action="append", dest="hosts", metavar="HOST",
                            help=_("id or name of a host of the certificate (repeatable); "
                                   "default: all of them"))

    def handle(self, *args, certificate, hosts, **options):
        certificate = by_id_or_name(Certificate.objects.select_related("organization"), certificate,
                                    name_field="common_name", kind=_("certificate"))
        host_ids = None
        if hosts:
            bound = certificate.hosts.all()
            host_ids = [by_id_or_name(bound, h, name_field="name", kind=_("host")).pk
                        for h in hosts]
        echo = self._printer(certificate)
        step_recorded.connect(echo, sender=RenewalStep, weak=False)
        try:
            run = renewal.deploy_inline(certificate_id=certificate.pk, host_ids=host_ids)
        except (NothingToDeploy, renewal.NoHosts, renewal.NotAHostOfTheCertificate) as exc:
            raise CommandError(str(exc)) from None
        finally:
            step_recorded.disconnect(echo, sender=RenewalStep)
        if run is None:
            raise CommandError(_("A run of this certificate is already under way."))
        self._summary(run)

    def _printer(self, certificate):
        lock = threading.Lock()  # hosts deploy in parallel: one line at a time
        zone = organization_zone(certificate.organization)

        def print_step(sender, step, **kwargs):
            if step.run.certificate_id != certificate.pk or step.host is None:
                return
            line = f"{step.host.name}  {step.get_name_display()}: {step.get_status_display()}"
            detail = step_detail(step.detail_message, zone)  # in the command's language
            if detail:
                line += "  " + detail.replace("\n", "\n    ")
            failed = step.status == RenewalStep.Status.FAILED
            with lock:
                self.stdout.write(self.style.ERROR(line) if failed else line)
        return print_step

    def _summary(self, run):
        for line in filter(None, run.log.splitlines()):
            self.stdout.write(line)
        if run.status != RenewalRun.Status.SUCCEEDED:
            kind = _("transient: try again later") if run.error_class == "transient" else _(
                "needs a person")
            raise CommandError(f"{run.get_progress_display()} ({kind}): {run.error}")
        self.stdout.write(self.style.SUCCESS(_("Deployed (run %(run)s).") % {"run": run.pk}))

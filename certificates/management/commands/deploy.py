"""manage.py deploy <certificate> [--host <host>]: install the current version now."""

import threading

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from certificates.deployment import NothingToDeploy, deploy_certificate
from certificates.models import Certificate, Deployment, RenewalStep

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
        certificate = by_id_or_name(Certificate.objects.all(), certificate,
                                    name_field="common_name", kind=_("certificate"))
        host_ids = None
        if hosts:
            bound = certificate.hosts.all()
            host_ids = [by_id_or_name(bound, h, name_field="name", kind=_("host")).pk
                        for h in hosts]
        try:
            outcomes = deploy_certificate(certificate_id=certificate.pk, host_ids=host_ids,
                                          on_step=self._printer())
        except NothingToDeploy as exc:
            raise CommandError(str(exc)) from None
        if not outcomes:
            raise CommandError(_("%(certificate)s is not bound to any host.")
                               % {"certificate": certificate})
        self._summary(outcomes)

    def _printer(self):
        lock = threading.Lock()  # hosts deploy in parallel: one line at a time

        def print_step(host, name, status, detail):
            step, outcome = RenewalStep.Name(name).label, RenewalStep.Status(status).label
            line = f"{host.name}  {step}: {outcome}"
            if detail:
                line += "  " + detail.replace("\n", "\n    ")
            style = self.style.ERROR if status == RenewalStep.Status.FAILED else (lambda text: text)
            with lock:
                self.stdout.write(style(line))
        return print_step

    def _summary(self, outcomes):
        failed = [o for o in outcomes if not o.ok]
        for outcome in outcomes:
            label = Deployment.Status(outcome.status).label
            if outcome.ok:
                self.stdout.write(self.style.SUCCESS(f"{outcome.host_name}: {label}"))
            else:
                kind = _("transient: try again later") if outcome.transient else _(
                    "needs a person")
                self.stdout.write(self.style.ERROR(f"{outcome.host_name}: {label} ({kind})"))
        if failed:
            raise CommandError(ngettext(
                "%(failed)s of %(total)s host did not take the new certificate.",
                "%(failed)s of %(total)s hosts did not take the new certificate.",
                len(outcomes)) % {"failed": len(failed), "total": len(outcomes)})

"""manage.py enrol_host <host>: pin a host's SSH key after a person checked its fingerprint."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from certificates.hosts import enrolment
from certificates.models import AuditEvent, TargetHost
from certificates.seams import ssh

from ..lookup import by_id_or_name


class Command(BaseCommand):
    help = gettext_lazy("Fetch a host's SSH host key, show its fingerprint and pin it "
                        "once confirmed.")

    def add_arguments(self, parser):
        parser.add_argument("host", help=_("id or name of the target host"))
        parser.add_argument(
            "--yes-i-checked", metavar="SHA256:...", dest="checked",
            help=_("confirm without asking, if the key's fingerprint is this one (for scripts)"),
        )
        parser.add_argument("--test", action="store_true",
                            help=_("then test the connection, folders and commands"))

    def handle(self, *args, host, checked, test, **options):
        host = by_id_or_name(TargetHost.objects.all(), host, name_field="name",
                             kind=_("host"))
        try:
            fingerprint = enrolment.fetch_and_pin_host_key(host_id=host.pk, by=None)
        except ssh.SSHError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(_("SSH host key of %(host)s (%(address)s:%(port)s):\n    %(fp)s")
                          % {"host": host.name, "address": host.address,
                             "port": host.ssh_port, "fp": fingerprint})
        host.refresh_from_db()
        if host.host_key_confirmed:
            self.stdout.write(_("This key is pinned and confirmed already."))
        else:
            self._confirm(host, checked or self._ask(fingerprint))
        if test:
            self._test(host)

    def _ask(self, fingerprint) -> str:
        self.stdout.write(_("Compare it with the host's own, e.g. “ssh-keygen -lf "
                            "/etc/ssh/ssh_host_ed25519_key.pub” run on the host."))
        try:
            answer = input(_("Is it the same? Type yes to pin it: "))
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("yes", _("yes")):
            raise CommandError(_("Not confirmed: the host receives nothing until its key "
                                 "is confirmed."))
        return fingerprint

    def _confirm(self, host, fingerprint):
        try:
            enrolment.confirm_host_key(host_id=host.pk, fingerprint=fingerprint, by=None)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        AuditEvent.record(None, action=AuditEvent.Action.HOST_KEY_CONFIRMED,
                          organization=host.organization, subject=host.name,
                          params={"fingerprint": fingerprint, "via": "command"})
        self.stdout.write(self.style.SUCCESS(_("Pinned and confirmed.")))

    def _test(self, host):
        checks = enrolment.test_connection(host_id=host.pk)
        for check in checks:
            mark = self.style.SUCCESS(_("ok")) if check.ok else self.style.ERROR(_("failed"))
            detail = check.detail.replace("\n", "\n    ")
            self.stdout.write(f"{check.label}: {mark}\n    {detail}")
        if not all(check.ok for check in checks):
            raise CommandError(_("Some checks failed."))

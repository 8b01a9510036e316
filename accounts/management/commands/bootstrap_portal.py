"""Creates the first administrator and organisation when there are none.

`make run` calls this on every start; it prints the login only when it creates
it, so a password appears on the screen once and never again.

Owner alerts go by e-mail, so the first administrator needs an address: it comes
from ``--email`` or PORTAL_ADMIN_EMAIL, or is asked for when the first
administrator is created at a terminal (``--no-input`` and anything unattended
never wait for an answer); while the first administrator has none, every start
says how to give one.
"""

import os
import secrets
import sys

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import Membership, Organization, Role

EMAIL_VARIABLE = "PORTAL_ADMIN_EMAIL"


class Command(BaseCommand):
    help = "Create the first administrator and organisation if none exist."
    stealth_options = ("stdin",)  # a terminal stands in for sys.stdin in tests

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--organization", default="My organisation")
        parser.add_argument(
            "--email", default=None,
            help=f"The first administrator's e-mail address for alerts "
                 f"(default: ${EMAIL_VARIABLE}); given to an existing first "
                 f"administrator without one.")
        parser.add_argument(
            "--no-input", "--noinput", action="store_false", dest="interactive",
            help="Never ask for the e-mail address, even at a terminal.")

    @transaction.atomic
    def handle(self, *args, **options):
        email = self._email(options["email"])
        User = get_user_model()
        first = User.objects.filter(is_superuser=True).order_by("pk").first()
        if first is None:
            if not email and options.get("interactive", True) and self._at_terminal(options):
                email = self._ask_email()
            first = self._create(User, options, email)
        else:
            self.stdout.write("An administrator exists already; nothing to create.")
            # Only an empty address is filled: one set since, in the UI, is
            # the person's own choice and a restart must not undo it.
            if email and not first.email:
                first.email = email
                first.save(update_fields=["email"])
                self.stdout.write(_("Alerts for %(user)s now go to %(email)s.")
                                  % {"user": first.username, "email": email})
        if not first.email:
            self.stdout.write(self.style.WARNING(_(
                "The administrator %(user)s has no e-mail address, so alerts for "
                "owners reach nobody. Give one with\n"
                "    .venv/bin/python manage.py bootstrap_portal --email you@example.org\n"
                "or start with %(variable)s=you@example.org make run, "
                "or on the user's page in the admin (/admin/accounts/user/).")
                % {"user": first.username, "variable": EMAIL_VARIABLE}))

    def _email(self, given):
        """The address from --email or the environment, checked, or ''."""
        source = "--email"
        if given is None:
            given, source = os.environ.get(EMAIL_VARIABLE, ""), EMAIL_VARIABLE
        email = given.strip()
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise CommandError(
                    _("%(source)s is not a valid e-mail address: %(email)r.")
                    % {"source": source, "email": email}) from None
        return email

    @staticmethod
    def _at_terminal(options):
        stdin = options.get("stdin") or sys.stdin
        return hasattr(stdin, "isatty") and stdin.isatty()

    def _ask_email(self):
        """Asks until the answer is an address or blank (to give one later)."""
        while True:
            answer = input(_("E-mail address of the first administrator, for alerts "
                             "(blank to give it later): ")).strip()
            if not answer:
                return ""
            try:
                validate_email(answer)
            except ValidationError:
                self.stderr.write(_("%(email)r is not a valid e-mail address.")
                                  % {"email": answer})
                continue
            return answer

    def _create(self, User, options, email):
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(
            username=options["username"], email=email, password=password
        )
        organization, _created = Organization.objects.get_or_create(
            slug="default", defaults={"name": options["organization"]}
        )
        Membership.objects.create(user=user, organization=organization, role=Role.OWNER)
        self.stdout.write(self.style.SUCCESS(
            "Created the first administrator (this password is shown only once):\n"
            f"    user name: {user.username}\n"
            f"    password:  {password}\n"
            f"    e-mail:    {user.email or '-'}\n"
            f"    organisation: {organization.name}\n"
            "The first sign-in asks for a second factor (an authenticator app or a passkey)."
        ))
        return user

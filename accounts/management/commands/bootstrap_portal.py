"""Creates the first administrator and organisation when there are none.

`make run` calls this on every start; it prints the login only when it creates
it, so a password appears on the screen once and never again.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Organization, Role


class Command(BaseCommand):
    help = "Create the first administrator and organisation if none exist."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--organization", default="My organisation")

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator exists already; nothing to create.")
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(
            username=options["username"], email="", password=password
        )
        organization, _ = Organization.objects.get_or_create(
            slug="default", defaults={"name": options["organization"]}
        )
        Membership.objects.create(user=user, organization=organization, role=Role.OWNER)
        self.stdout.write(self.style.SUCCESS(
            "Created the first administrator (this password is shown only once):\n"
            f"    user name: {user.username}\n"
            f"    password:  {password}\n"
            f"    organisation: {organization.name}\n"
            "The first sign-in asks for a second factor (an authenticator app or a passkey)."
        ))

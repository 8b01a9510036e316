"""Who is in an organisation and with which role: the rules the members page and
the API share. Administrators give and take roles up to administrator; only
owners make or unmake owners; nobody changes their own role; and the last owner
stays, so that an organisation can never lock itself out."""

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from .models import Membership, Role
from .tenancy import role_in


class Refused(Exception):
    """The change is not allowed; `code` says why ("not_allowed": the person
    may not make it; "last_owner": it would leave the organisation without one)."""

    def __init__(self, message, *, code):
        super().__init__(message)
        self.message, self.code = message, code


def grantable(by, organization) -> list[str]:
    """The roles `by` may give (and take away) in `organization`."""
    role = role_in(by, organization)
    if role not in (Role.ADMIN, Role.OWNER):
        return []
    return Role.values[: Role.values.index(role) + 1]


def _check_editable(membership: Membership, by) -> None:
    if membership.user_id == by.pk:
        raise Refused(_("Nobody changes their own role."), code="not_allowed")
    if membership.role not in grantable(by, membership.organization):
        raise Refused(_("Only owners change an owner's membership."), code="not_allowed")


def _other_owners_locked(membership: Membership) -> bool:
    """Whether an owner other than `membership` remains; the owners' rows are
    locked until the transaction ends, so that two owners demoting each other
    at once cannot both succeed."""
    owners = list(Membership.objects.select_for_update().filter(
        organization_id=membership.organization_id, role=Role.OWNER).values_list(
        "pk", flat=True))
    return any(pk != membership.pk for pk in owners)


def change_role(*, membership: Membership, role: str, by) -> str:
    """Gives `membership` the role `role`; the role it had. Raises Refused."""
    _check_editable(membership, by)
    if role not in grantable(by, membership.organization):
        raise Refused(_("Only owners make owners."), code="not_allowed")
    with transaction.atomic():
        if (membership.role == Role.OWNER and role != Role.OWNER
                and not _other_owners_locked(membership)):
            raise Refused(_("The last owner cannot be demoted."), code="last_owner")
        before = membership.role
        Membership.objects.filter(pk=membership.pk).update(role=role)
    membership.role = role
    return before


def remove(*, membership: Membership, by) -> None:
    """Takes `membership`'s person out of the organisation. Raises Refused."""
    _check_editable(membership, by)
    with transaction.atomic():
        if membership.role == Role.OWNER and not _other_owners_locked(membership):
            raise Refused(_("The last owner cannot be removed."), code="last_owner")
        membership.delete()

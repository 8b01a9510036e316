"""The one place that scopes queries to the organisations of the person asking.

Every model that belongs to a tenant names the path from itself to its
Organization in ``tenant_path`` (``"organization"``, ``"certificate__organization"``,
...). Views, the admin and the API fetch objects through ``scoped()`` or
``get_scoped_or_404()``, so an object of another organisation is simply not
found: a 404, never a 403 that would confirm it exists.
"""

from django.db.models import Model, QuerySet
from django.http import Http404

from .models import Membership, Organization, Role, User


def organizations_of(user, *, at_least=Role.VIEWER) -> QuerySet:
    """The organisations in which `user` holds `at_least` this role."""
    if not getattr(user, "is_authenticated", False):
        return Organization.objects.none()
    return Organization.objects.filter(
        memberships__user=user, memberships__role__in=Role.at_least(at_least)
    )


def scoped(model_or_queryset, user, *, at_least=Role.VIEWER) -> QuerySet:
    """`model_or_queryset` narrowed to the rows of `user`'s organisations."""
    queryset = (
        model_or_queryset
        if isinstance(model_or_queryset, QuerySet)
        else model_or_queryset._default_manager.all()
    )
    path = queryset.model.tenant_path
    # A subquery rather than a join: no duplicate rows, and one query in all.
    org_ids = organizations_of(user, at_least=at_least).values("pk")
    return queryset.filter(**{f"{path}__in": org_ids})


def get_scoped_or_404(model_or_queryset, user, *, at_least=Role.VIEWER, **lookup) -> Model:
    queryset = scoped(model_or_queryset, user, at_least=at_least)
    try:
        return queryset.get(**lookup)
    except queryset.model.DoesNotExist as exc:
        raise Http404 from exc


def role_in(user, organization) -> str | None:
    """`user`'s role in `organization`, or None for an outsider."""
    if not getattr(user, "is_authenticated", False):
        return None
    return (
        Membership.objects.filter(user=user, organization=organization)
        .values_list("role", flat=True)
        .first()
    )


def has_role(user, organization, at_least) -> bool:
    role = role_in(user, organization)
    return role is not None and role in Role.at_least(at_least)


def people_of(user, *, at_least=Role.VIEWER) -> QuerySet:
    """The people who are members of an organisation in which `user` holds
    `at_least` this role (`user` among them)."""
    org_ids = organizations_of(user, at_least=at_least).values("pk")
    members = Membership.objects.filter(organization__in=org_ids).values("user")
    return User.objects.filter(pk__in=members)

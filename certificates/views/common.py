"""What every page shares: the organisation being looked at, the role of the
person in it, its time zone, and pagination.

A person may belong to several organisations; lists and the dashboard show the
one chosen in the header's switcher (kept in the session). A page about one
object switches to that object's organisation, so its times and the actions
offered are that organisation's. Objects are always fetched through
`accounts.tenancy`, so another organisation's object is a 404.
"""

import zoneinfo
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone

from accounts.models import Role
from accounts.tenancy import organizations_of, role_in
from fujissl_portal.pagination import KeysFirstPaginator

SESSION_KEY = "organization_id"
PAGE_SIZE = 50


def enter(request, organization):
    """Makes `organization` the one this request (and the session) looks at."""
    request.organization = organization
    request.role = role_in(request.user, organization)
    request.role_label = dict(Role.choices).get(request.role, "")
    if request.session.get(SESSION_KEY) != organization.pk:  # no session write otherwise
        request.session[SESSION_KEY] = organization.pk
    # A person's own zone, if set, over the organisation's.
    zone = getattr(request.user, "time_zone", "") or organization.time_zone
    try:
        timezone.activate(zoneinfo.ZoneInfo(zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        timezone.deactivate()


def _chosen_organization(request):
    mine = organizations_of(request.user)
    chosen = request.session.get(SESSION_KEY)
    return (chosen and mine.filter(pk=chosen).first()) or mine.order_by("name").first()


def portal_view(view):
    """Signed in, with an organisation: sets request.organization, request.role
    and the organisation's time zone."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        organization = _chosen_organization(request)
        if organization is None:
            return render(request, "certificates/no_organization.html", status=403)
        enter(request, organization)
        try:
            return view(request, *args, **kwargs)
        finally:
            timezone.deactivate()

    return wrapper


def can(request, role) -> bool:
    return request.role is not None and request.role in Role.at_least(role)


def require(request, role):
    """A member without the role sees the page but may not act: 403 (an outsider
    never gets this far: the object was a 404)."""
    if not can(request, role):
        raise PermissionDenied


def roles(request) -> dict:
    """Flags for templates: what the person may do in the current organisation."""
    return {
        "can_operate": can(request, Role.OPERATOR),
        "can_admin": can(request, Role.ADMIN),
    }


def paginate(request, queryset, per_page=PAGE_SIZE):
    return KeysFirstPaginator(queryset, per_page).get_page(request.GET.get("page"))


def query_without_page(request) -> str:
    """The current filters as a query string, for pagination links."""
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()

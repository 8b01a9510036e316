"""Who may do what: the token's scopes, then the person's role in the object's
organisation. Objects outside the person's organisations never get this far:
the querysets are scoped, so they are a 404."""

from django.utils.translation import gettext_lazy as _
from rest_framework import permissions

from accounts.models import Role
from accounts.tenancy import has_role

from .models import APIToken, Scope


class TokenScope(permissions.BasePermission):
    """A token needs `read` to read and `write` to change anything; a browser
    session (the browsable API) has both."""

    message = _("This token lacks the “%(scope)s” scope.")

    def has_permission(self, request, view):
        if not isinstance(request.auth, APIToken):
            return True
        scope = Scope.READ if request.method in permissions.SAFE_METHODS else Scope.WRITE
        if not request.auth.allows(scope):
            self.message = TokenScope.message % {"scope": scope}
            return False
        return True


class RoleForAction(permissions.BasePermission):
    """The role each action needs, from the view's `roles` mapping (action → role);
    reading needs viewer."""

    message = _("Your role in this organisation does not allow this.")

    def required_role(self, view):
        return getattr(view, "roles", {}).get(view.action, Role.VIEWER)

    def has_object_permission(self, request, view, obj):
        role = self.required_role(view)
        if has_role(request.user, organization_of(obj), role):
            return True
        self.message = _("This needs the %(role)s role in the organisation.") % {
            "role": Role(role).label}
        return False


def organization_of(obj):
    for part in type(obj).tenant_path.split("__"):
        obj = getattr(obj, part)
    return obj

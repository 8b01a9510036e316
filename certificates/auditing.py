"""What an audit event says, worked out when it is written and read.

``snapshot(obj)`` before a change and ``changed(obj, before)`` after it give the
names of the fields that changed: names only, so a changed secret (an EAB
HMAC key, a login key) is recorded as changed and never by value.
``describe(event)`` renders an event's parameters in the reader's language.
"""

from django.apps import apps
from django.utils.translation import gettext as _

from accounts.models import Role

from .formatting import format_amount

# An event's "fields" are named after the model its action is about.
FIELD_MODELS = {
    "host_": ("certificates", "TargetHost"),
    "ca_account_": ("certificates", "CAAccount"),
    "certificate_": ("certificates", "Certificate"),
    "webhook_": ("api", "Webhook"),
    "channel_": ("certificates", "NotificationChannel"),
    "organization_": ("accounts", "Organization"),
}
# Also what the portal reads from the CA when a person saves (a CA account's
# profiles): no one's change.
NOT_CHANGES = {"created_at", "updated_at", "profiles", "profiles_checked_at",
               "caa_identities"}


def _fields(obj):
    return [f for f in obj._meta.concrete_fields
            if not f.primary_key and f.name not in NOT_CHANGES]


def snapshot(obj) -> dict:
    """The values of `obj`'s fields now (in memory only: they may be secrets)."""
    values = {f.name: f.value_from_object(obj) for f in _fields(obj)}
    for field in obj._meta.many_to_many:
        values[field.name] = (sorted(getattr(obj, field.name).values_list("pk", flat=True))
                              if obj.pk else [])
    return values


def changed(obj, before: dict) -> dict:
    """Parameters for a "changed" event: {"fields": [names of changed fields]}."""
    after = snapshot(obj)
    return {"fields": [name for name, value in after.items() if before.get(name) != value]}


def _model_for(action):
    for prefix, (app, model) in FIELD_MODELS.items():
        if action.startswith(prefix):
            return apps.get_model(app, model)
    return None


def _field_label(model, name):
    if model is None:
        return name
    try:
        return str(model._meta.get_field(name).verbose_name)
    except LookupError:
        return name


def _role(value):
    return str(dict(Role.choices).get(value, value))


def describe(event) -> str:
    """The event's facts as one line in the active language."""
    params = event.params or {}
    parts = [*_who_and_what(event.action, params), *_values(params)]
    via = _via(params.get("via"))
    if via:
        parts.append(via)
    if event.detail:
        parts.append(event.detail)
    return "; ".join(parts)


def _who_and_what(action, params) -> list[str]:
    """The fields changed, a person's role, their e-mail, a new account."""
    parts = []
    if "fields" in params:
        model = _model_for(action)
        names = ", ".join(_field_label(model, name) for name in params["fields"])
        parts.append(_("fields changed: %(fields)s") % {"fields": names or _("none")})
    if "from_role" in params:
        parts.append(_("role: %(old)s → %(new)s") % {
            "old": _role(params["from_role"]), "new": _role(params.get("to_role"))})
    elif "role" in params:
        parts.append(_("role: %(role)s") % {"role": _role(params["role"])})
    if "email" in params:
        parts.append(_("e-mail: %(email)s") % {"email": params["email"]})
    if params.get("new_account"):
        parts.append(_("new account"))
    if "to" in params:
        parts.append(_("CA account: %(old)s → %(new)s") % {"old": params.get("from", ""),
                                                          "new": params["to"]})
    if "moved" in params:
        parts.append(_("certificates moved: %(moved)s, without a fallback: %(stranded)s")
                     % {"moved": params["moved"], "stranded": params.get("stranded", 0)})
    return parts


def _values(params) -> list[str]:
    """An amount, a fingerprint, a token's scopes."""
    parts = []
    if "amount" in params:
        parts.append(_("amount: %(amount)s") % {
            "amount": format_amount(params["amount"], params.get("currency", ""))})
    if "fingerprint" in params:
        parts.append(_("fingerprint: %(fingerprint)s") % {"fingerprint": params["fingerprint"]})
    if "scopes" in params:
        parts.append(_("scopes: %(scopes)s") % {"scopes": ", ".join(params["scopes"])})
    return parts


def _via(via) -> str:
    """Where the action came from, when not from the portal's pages."""
    if via == "command":
        return _("from the command line")
    if via == "api":
        return _("through the API")
    if via == "admin":
        return _("in the admin site")
    return ""


def audit_actions(noun) -> tuple:
    """The (created, changed, deleted) actions of `noun` ("HOST", "CA_ACCOUNT"...)."""
    from .models import AuditEvent  # noqa: PLC0415

    return tuple(getattr(AuditEvent.Action, f"{noun}_{what}")
                 for what in ("CREATED", "CHANGED", "DELETED"))


class AuditedAdmin:
    """For a ModelAdmin (first among its bases): creation, change and deletion
    through the admin site are in the organisation's audit log too. `audited`
    names the (created, changed, deleted) actions."""

    audited: tuple = ()

    def _audit(self, request, action, obj, organization, **params):
        from .models import AuditEvent, Certificate  # noqa: PLC0415

        AuditEvent.record(request, action=action, organization=organization,
                          certificate=obj if isinstance(obj, Certificate) and obj.pk else None,
                          subject=str(obj), params={**params, "via": "admin"})

    def save_model(self, request, obj, form, change):
        before = snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        params = changed(obj, before) if change else {}
        self._audit(request, self.audited[1 if change else 0], obj, obj.organization, **params)

    def delete_model(self, request, obj):
        organization = obj.organization
        super().delete_model(request, obj)
        self._audit(request, self.audited[2], obj, organization)

    def delete_queryset(self, request, queryset):
        gone = [(obj, obj.organization) for obj in queryset.select_related("organization")]
        super().delete_queryset(request, queryset)
        for obj, organization in gone:
            self._audit(request, self.audited[2], obj, organization)

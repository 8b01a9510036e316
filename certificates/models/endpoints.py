"""A stored secret belongs to the endpoint it was entered for.

Secrets are write-only: a person who may edit a row but never saw its secret
leaves the field blank to keep it. Pointing the row at another endpoint (a DNS
server of one's own, another ACME directory) would then put the stored secret
to work there. So when an endpoint changes, the secret must be entered again.
Each model names its secrets and their endpoints in ``secret_endpoints``.
"""

from django.utils.text import capfirst
from django.utils.translation import gettext as _


def stale_secret_errors(instance, *, given) -> dict[str, str]:
    """Field errors for each stored secret of ``instance`` (unsaved changes
    applied) whose endpoint changed while no new secret is in ``given``."""
    endpoints = getattr(type(instance), "secret_endpoints", {})
    if instance.pk is None or not endpoints:
        return {}
    fields = set(endpoints) | {name for names in endpoints.values() for name in names}
    stored = type(instance)._default_manager.only(*fields).filter(pk=instance.pk).first()
    if stored is None:
        return {}
    errors = {}
    meta = type(instance)._meta
    for secret, names in endpoints.items():
        if secret in given or not getattr(stored, secret) or not getattr(instance, names[0]):
            continue  # a new secret, none stored, or no endpoint to send it to
        changed = [name for name in names if getattr(instance, name) != getattr(stored, name)]
        if changed:
            errors[secret] = _(
                "%(fields)s changed, so the stored %(secret)s is not used for it: enter the "
                "%(secret)s again.") % {
                    "fields": ", ".join(str(capfirst(meta.get_field(n).verbose_name))
                                        for n in changed),
                    "secret": str(meta.get_field(secret).verbose_name)}
    return errors

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = _("REST API")

    def ready(self):
        from certificates.signals import portal_event

        from . import revocation, schema  # noqa: F401 - registers the OpenAPI extension of the token auth
        from .webhooks import emit_portal_event

        portal_event.connect(emit_portal_event, dispatch_uid="api-webhooks")
        revocation.connect()

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "fujissl_portal"
    verbose_name = "Certificate portal"

    def ready(self):
        from . import checks  # noqa: F401, PLC0415 - registers the system checks

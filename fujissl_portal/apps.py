from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "fujissl_portal"
    verbose_name = "Certificate portal"

    def ready(self):
        # The system checks register themselves; the start-up time is taken now.
        from . import checks, uptime  # noqa: F401, PLC0415

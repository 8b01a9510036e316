from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts and organisations")

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from .middleware import stamp_session
        from .signin import connect_signals

        user_logged_in.connect(stamp_session, dispatch_uid="accounts-session-stamp")
        connect_signals()

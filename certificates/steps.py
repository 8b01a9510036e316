"""The steps a renewal run records, and their statuses: one list, with the
words people read for each (the runs page, the API's labels, `manage.py`).

No models here, so that the host side (installer) can name its steps without
knowing of runs; RenewalStep takes both lists as its fields' choices.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Step(models.TextChoices):
    # Issuance, in the order a run goes through them.
    RESUME = "resume", _("Taken up again")
    DEPOSIT = "deposit", _("Deposit")
    ACCOUNT = "account", _("CA account")
    KEY = "key", _("Private key")
    ORDER = "order", _("Order")
    CHALLENGE = "challenge", _("Domain proof")
    VALIDATION = "validation", _("Validation")
    FINALIZE = "finalize", _("Finalization")
    STORE = "store", _("Certificate stored")
    CHARGE = "charge", _("Charge")
    SCHEDULE = "schedule", _("Next renewal")
    # Deployment to a host.
    LOCK = "lock", _("Host lock")
    CONNECT = "connect", _("Connection")
    BACKUP = "backup", _("Backup")
    UPLOAD = "upload", _("Upload")
    INSTALL = "install", _("Installation")
    CONFIG_TEST = "config_test", _("Configuration test")
    RELOAD = "reload", _("Reload")
    TLS_CHECK = "tls_check", _("Served certificate check")
    RETRY = "retry", _("Tried alone")
    ROLLBACK = "rollback", _("Rollback")
    CLEANUP = "cleanup", _("Clean-up")


class StepStatus(models.TextChoices):
    STARTED = "started", _("Started")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")

"""The Celery app. Workers and beat start with `celery -A fujissl_portal ...`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fujissl_portal.settings")

app = Celery("fujissl_portal")
# Every CELERY_* setting in settings.py configures the app.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

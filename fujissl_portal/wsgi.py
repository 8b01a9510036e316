"""WSGI entry point, for gunicorn in production (see README.md)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fujissl_portal.settings")
application = get_wsgi_application()

"""The REST API (api/): Django REST framework, the OpenAPI schema, /metrics and
the write throttle."""

import re

from django.core.exceptions import ImproperlyConfigured

from .environment import env

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON nested at most 32 levels; the form parsers serve the browsable API's forms.
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Certificate portal API", "VERSION": "1",
    "SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Swagger UI would send the schema to validator.swagger.io for its badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SERVE_INCLUDE_SCHEMA": False, "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "certificates.models.runs.RenewalRun.Status",
        "StepStatusEnum": "certificates.steps.StepStatus",
        "StepNameEnum": "certificates.steps.Step",
        "OrderStatusEnum": "certificates.models.orders.Order.Status",
        "DeploymentStatusEnum": "certificates.models.hosts.Deployment.Status",
        "WebhookEventEnum": "api.models.Event",
        "DiscoveryKindEnum": "certificates.models.discovery.Discovery.Kind",
        "DiscoveryStatusEnum": "certificates.models.discovery.Discovery.Status",
    },
    "DESCRIPTION": "Certificates, hosts, deployments, renewal runs, CA accounts and orders "
                   "of the organisations you belong to.",
}

# /metrics is open to a bearer METRICS_TOKEN or to the addresses (or networks)
# in METRICS_ALLOWED_IPS; with neither set it is closed.
# No loopback default: behind a reverse proxy every request comes from 127.0.0.1.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
API_THROTTLE_RATE = env("API_THROTTLE_RATE", default="600/min")
if not re.fullmatch(r"[1-9]\d*/(s|sec|m|min|h|hour|d|day)", API_THROTTLE_RATE):
    raise ImproperlyConfigured(
        f"API_THROTTLE_RATE={API_THROTTLE_RATE!r}: write requests per period, e.g. 600/min "
        "(periods: sec, min, hour, day).")

"""One shape for every error: {"errors": [{"field": ..., "message": ..., "code": ...}]}.

Django's own ValidationError (a model's clean(), a service) and database
integrity errors become a 400 naming the field, never a 500.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The request conflicts with the current state of the object.")
    default_code = "conflict"


class BadGateway(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = _("The host could not be reached.")
    default_code = "host_unreachable"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request body is too large.")
    default_code = "too_large"


def _translate(exc):
    if isinstance(exc, RequestDataTooBig):
        # Django's own answer would be an HTML "Bad Request".
        return PayloadTooLarge(_("The request body is larger than %(max)d bytes.")
                               % {"max": settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, ProtectedError):
        return Conflict(_("Other objects still refer to this one; remove them first."),
                        code="protected")
    if isinstance(exc, IntegrityError):
        logger.info("integrity error turned into a 400: %s", exc)
        return exceptions.ValidationError(
            {NON_FIELD: [_("This conflicts with an object that already exists.")]},
            code="integrity")
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def flatten(details, field=None):
    """[{"field", "message", "code"}] from DRF's nested get_full_details()."""
    if isinstance(details, dict) and "message" in details and "code" in details:
        return [{"field": None if field in (None, NON_FIELD) else field,
                 "message": str(details["message"]), "code": str(details["code"])}]
    items = details.items() if isinstance(details, dict) else enumerate(details)
    errors = []
    for key, value in items:
        if isinstance(details, dict):
            name = key if field is None else (field if key == NON_FIELD else f"{field}.{key}")
        else:
            # A list of messages for one field keeps its name; a list of items
            # (a list field's children) names the index.
            is_message = isinstance(value, dict) and "message" in value
            name = field if is_message else (str(key) if field is None else f"{field}.{key}")
        errors.extend(flatten(value, name))
    return errors


def exception_handler(exc, context):
    exc = _translate(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: a 500, logged by Django
    if isinstance(exc, exceptions.APIException):
        response.data = {"errors": flatten(exc.get_full_details())}
    return response


def error_body(message, code, field=None):
    return {"errors": [{"field": field, "message": str(message), "code": code}]}

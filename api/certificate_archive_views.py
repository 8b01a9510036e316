"""The certificate's "archive" and "restore" actions, apart from views.py to keep
that module within its size: certificates/archiving.py does the work and
writes the audit log; administrators only (the viewset's roles)."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from certificates import archiving

from .errors import Conflict
from .schema import ErrorSerializer


class ArchiveStateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    common_name = serializers.CharField()
    archived_at = serializers.DateTimeField(allow_null=True, help_text=_(
        "When the certificate was archived; null once restored."))
    changed = serializers.BooleanField(help_text=_(
        "False when it was in that state already (nothing was recorded)."))


def _state(certificate, changed: bool) -> Response:
    return Response(ArchiveStateSerializer({
        "id": certificate.pk, "common_name": certificate.common_name,
        "archived_at": certificate.archived_at, "changed": changed}).data,
        status=status.HTTP_200_OK)


class ArchiveActions:
    """Mixed into the certificate viewset."""

    @extend_schema(
        request=None,
        responses={200: ArchiveStateSerializer,
                   409: OpenApiResponse(ErrorSerializer, description=_(
                       "A renewal run of the certificate is under way."))},
        summary=_("Archive (administrators)"),
        description=_("Keeps the certificate with its versions and history, but it is no "
                      "longer renewed, alerted on, counted on the dashboard or in the deposit "
                      "forecast, nor chosen by incidents; the list leaves it out unless "
                      "archived=true. Refused while a renewal run is under way."))
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        certificate = self.get_object()  # type: ignore[attr-defined]
        try:
            changed = archiving.archive(request, certificate)
        except archiving.ArchiveRefused as exc:
            raise Conflict(str(exc), code="run_open") from exc
        return _state(certificate, changed)

    @extend_schema(
        request=None, responses={200: ArchiveStateSerializer},
        summary=_("Restore from the archive (administrators)"),
        description=_("The certificate is renewed, alerted on and counted again; if its "
                      "renewal time passed while it was archived, the next scan renews it."))
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        certificate = self.get_object()  # type: ignore[attr-defined]
        return _state(certificate, archiving.restore(request, certificate))

"""The certificate's "revoke" action, apart from certificate_views.py to keep that module
within its size: a version revoked at its CA (certificates/renewal/revocation.py)."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from certificates.models import CertificateVersion, RevocationReason
from certificates.renewal import revocation

from .certificate_serializers import VersionSerializer
from .errors import BadGateway, Conflict
from .schema import ErrorSerializer

REASONS = {label: value for value, label in (
    (RevocationReason.UNSPECIFIED, "unspecified"),
    (RevocationReason.KEY_COMPROMISE, "keyCompromise"),
    (RevocationReason.AFFILIATION_CHANGED, "affiliationChanged"),
    (RevocationReason.SUPERSEDED, "superseded"),
    (RevocationReason.CESSATION_OF_OPERATION, "cessationOfOperation"),
)}


class RevokeRequestSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1,
        help_text=_("The version to revoke (an id from /versions/); the current one if "
                    "left out."))
    reason = serializers.ChoiceField(
        choices=sorted(REASONS), default="unspecified",
        help_text=_("The RFC 5280 reason sent to the CA."))
    force = serializers.BooleanField(
        default=False,
        help_text=_("Revoke a version that hosts still serve: only with keyCompromise; "
                    "its replacement is started at once."))


class RevokeResultSerializer(serializers.Serializer):
    version = VersionSerializer()
    signed_by = serializers.ChoiceField(choices=CertificateVersion.SignedBy.choices)
    replacement_run = serializers.IntegerField(allow_null=True)


class RevocationActions:
    """Mixed into the certificate viewset (administrators only, in its roles)."""

    @extend_schema(
        request=RevokeRequestSerializer,
        responses={200: RevokeResultSerializer,
                   409: OpenApiResponse(ErrorSerializer, description=_(
                       "Still served, revoked already, no such version, or the CA refused.")),
                   502: OpenApiResponse(ErrorSerializer, description=_(
                       "The CA could not be reached."))},
        summary=_("Revoke a version (administrators)"),
        description=_("Revokes a version at its CA (ACME revokeCert), signed by the CA "
                      "account's key or, the account gone, by the certificate's own key. "
                      "A version that a host still serves is refused unless force=true "
                      "with reason keyCompromise, which also starts its replacement."))
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        certificate = self.get_object()  # type: ignore[attr-defined]
        body = RevokeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version_id = body.validated_data.get("version", certificate.current_version_id)
        if not version_id or not CertificateVersion.objects.filter(
                certificate=certificate, pk=version_id).exists():
            raise Conflict(_("This certificate has no such issued version."),
                           code="no_version")
        try:
            done = revocation.revoke_version(
                version_id=version_id, reason=REASONS[body.validated_data["reason"]],
                by=request.user, force=body.validated_data["force"], request=request)
        except revocation.RevocationFailed as exc:
            if exc.error is not None and exc.error.transient:
                raise BadGateway(str(exc), code="ca_unreachable") from exc
            raise Conflict(str(exc), code="ca_refused") from exc
        except revocation.StillServed as exc:
            raise Conflict(str(exc), code="still_served") from exc
        except revocation.RevocationRefused as exc:
            raise Conflict(str(exc), code="not_revoked") from exc
        return Response({
            "version": VersionSerializer(done.version, context={"request": request}).data,
            "signed_by": done.signed_by,
            "replacement_run": done.replacement.pk if done.replacement else None,
        }, status=status.HTTP_200_OK)

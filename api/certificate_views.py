"""The certificates' endpoints: CRUD, renew and deploy now, versions and PEM downloads."""

from django.db.models import F, Prefetch
from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, renderers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from accounts.models import Role
from accounts.tenancy import has_role
from certificates import renewal
from certificates.archiving import archived_message
from certificates.hosts.deployment import NothingToDeploy
from certificates.models import (
    AuditEvent,
    Certificate,
    CertificateVersion,
    Deployment,
    RenewalRun,
)
from certificates.renewal import limits as renewal_limits
from certificates.renewal import name_warnings

from . import filters
from .certificate_archive_views import ArchiveActions
from .certificate_revocation_views import RevocationActions
from .certificate_serializers import CertificateSerializer, VersionSerializer
from .dns_chain_actions import DNSChainActions
from .errors import Conflict
from .schema import ErrorSerializer
from .serializers import DeployRequestSerializer, RenewRequestSerializer, RunSerializer
from .views import CONFLICT, PEM_MEDIA_TYPE, Audited, ErrorsAsJSON, PortalViewSet

CERTIFICATE_ROLES = {"create": Role.OPERATOR, "update": Role.OPERATOR,
                     "partial_update": Role.OPERATOR, "destroy": Role.ADMIN,
                     "renew": Role.OPERATOR, "deploy": Role.OPERATOR,
                     "acme_dns": Role.OPERATOR, "revoke": Role.ADMIN,
                     "archive": Role.ADMIN, "restore": Role.ADMIN}
PEM_RESPONSES = {
    (200, PEM_MEDIA_TYPE): OpenApiResponse(OpenApiTypes.STR, description=_("PEM text")),
    409: OpenApiResponse(ErrorSerializer, description=_("No such issued version.")),
}


@extend_schema_view(
    list=extend_schema(parameters=[filters.CertificateFilters],
                       summary=_("Certificates of your organisations")),
    destroy=extend_schema(responses={204: None, 409: CONFLICT}),
)
class CertificateViewSet(Audited, DNSChainActions, RevocationActions, ArchiveActions,
                         mixins.ListModelMixin,
                         mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                         mixins.UpdateModelMixin, mixins.DestroyModelMixin, PortalViewSet):
    model = Certificate
    serializer_class = CertificateSerializer
    filter_class = filters.CertificateFilters
    roles = CERTIFICATE_ROLES
    audited = (AuditEvent.Action.CERTIFICATE_CREATED, AuditEvent.Action.CERTIFICATE_CHANGED,
               AuditEvent.Action.CERTIFICATE_DELETED)

    def perform_create(self, serializer):
        super().perform_create(serializer)
        self._warn(serializer)

    def perform_update(self, serializer):
        super().perform_update(serializer)
        if set(serializer.validated_data) & set(name_warnings.CHECKED_FIELDS):
            self._warn(serializer)

    @staticmethod
    def _warn(serializer):
        # After the save, outside its transaction: DNS is asked over the network.
        serializer.instance.name_warnings = name_warnings.warnings_for(serializer.instance)

    def base_queryset(self):
        return Certificate.objects.annotate(
            current_revoked_at=F("current_version__revoked_at")).prefetch_related(
            "dns_credentials",
            Prefetch("deployments", queryset=Deployment.objects.only("id", "host_id",
                                                                      "certificate_id")))

    @extend_schema(request=RenewRequestSerializer,
                   responses={202: RunSerializer, 409: CONFLICT}, summary=_("Renew now"),
                   description=_("Starts a renewal run, or returns the one already open. "
                                 "Poll /api/v1/runs/{id}/ until is_open is false. Before "
                                 "the certificate's renewal window it needs force=true and "
                                 "an administrator; 409 past the organisation's daily "
                                 "number of paid renewals."))
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        certificate = self.get_object()
        body = RenewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        force = body.validated_data["force"]
        if force and not certificate.in_renewal_window():
            if not has_role(request.user, certificate.organization, Role.ADMIN):
                raise PermissionDenied(_("Only an administrator can renew a certificate "
                                         "before its renewal window."))
        try:
            run = renewal.renew_now(certificate_id=certificate.pk, by=request.user,
                                    trigger=RenewalRun.Trigger.API, force=force)
        except renewal_limits.NotDue as exc:
            version = certificate.current_version
            raise ValidationError({"force": [
                _("%(name)s is valid until %(until)s and renews by itself from %(from)s; "
                  "renewing now issues and charges %(price)s %(currency)s again. Send "
                  "force=true (administrators only) to renew anyway.")
                % {"name": certificate.common_name, "until": version.not_after.isoformat(),
                   "from": certificate.renew_after.isoformat(),
                   "price": certificate.ca_account.price,
                   "currency": certificate.ca_account.currency}]}, code="not_due") from exc
        except renewal_limits.Archived as exc:
            raise Conflict(archived_message(), code="archived") from exc
        except renewal_limits.PaidIssuanceLimit as exc:
            raise Conflict(_("This organisation has started %(limit)d paid renewals in the "
                             "last 24 hours, its daily limit (PAID_ISSUANCES_PER_DAY); this "
                             "one was not started.") % {"limit": exc.limit},
                           code="paid_issuance_limit") from exc
        if run is None:  # the run under way ended between the service's two looks
            raise Conflict(_("The renewal could not be started."), code="not_started")
        if run.forced:
            renewal_limits.record_forced(request, certificate=certificate, run=run)
        response = Response(RunSerializer(run, context={"request": request}).data,
                            status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/runs/{run.pk}/"
        return response

    @extend_schema(request=DeployRequestSerializer,
                   responses={202: RunSerializer, 409: CONFLICT},
                   summary=_("Deploy now"),
                   description=_("Starts a deploy-only run of the current version to the "
                                 "certificate's hosts (or some of them), or returns the run "
                                 "already under way; follow the run for the outcome."))
    @action(detail=True, methods=["post"])
    def deploy(self, request, pk=None):
        certificate = self.get_object()
        body = DeployRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wanted = body.validated_data.get("hosts")
        try:
            run = renewal.deploy_now(certificate_id=certificate.pk, by=request.user,
                                     host_ids=sorted(wanted) if wanted is not None else None,
                                     trigger=RenewalRun.Trigger.API)
        except renewal_limits.Archived as exc:
            raise Conflict(archived_message(), code="archived") from exc
        except NothingToDeploy:
            raise Conflict(_("This certificate has no issued version to deploy yet."),
                           code="nothing_to_deploy") from None
        except renewal.NoHosts:
            raise Conflict(_("This certificate has no target hosts."), code="no_hosts") from None
        except renewal.NotAHostOfTheCertificate as exc:
            raise ValidationError({"hosts": [str(exc)]}, code="invalid_choice") from None
        response = Response(RunSerializer(run, context={"request": request}).data,
                            status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/runs/{run.pk}/"
        return response

    @extend_schema(responses={200: VersionSerializer(many=True)}, summary=_("Versions"))
    @action(detail=True, methods=["get"], serializer_class=VersionSerializer,
            filter_class=None)
    def versions(self, request, pk=None):
        certificate = self.get_object()
        page = self.paginate_queryset(certificate.versions.order_by("-not_before", "-pk"))
        return self.get_paginated_response(
            VersionSerializer(page, many=True, context={"request": request}).data)

    def _pem(self, request, kind):
        certificate = self.get_object()
        query = filters.VersionQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        version_id = query.validated_data.get("version", certificate.current_version_id)
        version = (CertificateVersion.objects.filter(certificate=certificate, pk=version_id)
                   .first() if version_id else None)
        if version is None:
            raise Conflict(_("This certificate has no such issued version."),
                           code="no_version")
        text = version.intermediates_pem() if kind == "chain" else version.fullchain_pem()
        response = HttpResponse(text, content_type=PEM_MEDIA_TYPE)
        response["Content-Disposition"] = (
            f'attachment; filename="{certificate.common_name.replace("*", "_")}.{kind}.pem"')
        return response

    @extend_schema(parameters=[filters.VersionQuery],
                   responses=PEM_RESPONSES,
                   summary=_("Download the chain"),
                   description=_("The CA bundle: every certificate after the leaf."))
    @action(detail=True, methods=["get"],
            renderer_classes=[renderers.JSONRenderer], content_negotiation_class=ErrorsAsJSON)
    def chain(self, request, pk=None):
        return self._pem(request, "chain")

    @extend_schema(parameters=[filters.VersionQuery],
                   responses=PEM_RESPONSES,
                   summary=_("Download the full chain"),
                   description=_("The leaf followed by the CA bundle."))
    @action(detail=True, methods=["get"],
            renderer_classes=[renderers.JSONRenderer], content_negotiation_class=ErrorsAsJSON)
    def fullchain(self, request, pk=None):
        return self._pem(request, "fullchain")

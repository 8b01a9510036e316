"""The REST API, /api/v1/. Every queryset comes from accounts.tenancy.scoped(), so an
object of another organisation is a 404; the role each action needs is in `roles`."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import DecimalField, F, Prefetch, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, pagination, renderers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts.models import Role
from accounts.tenancy import has_role, organizations_of, scoped
from certificates import renewal
from certificates.archiving import archived_message
from certificates.auditing import changed, snapshot
from certificates.formatting import check_minor_units
from certificates.hosts import enrolment
from certificates.hosts.deployment import NothingToDeploy
from certificates.models import (
    AuditEvent,
    CAAccount,
    Certificate,
    CertificateVersion,
    Deployment,
    DNSCredential,
    Order,
    RenewalRun,
    RenewalStep,
    TargetHost,
)
from certificates.renewal import deposit
from certificates.renewal import limits as renewal_limits
from certificates.seams import ssh
from fujissl_portal.pagination import KeysFirstPaginator

from . import filters
from . import serializers as s
from .agent_host_actions import AgentHostActions
from .authentication import TokenAuthentication
from .ca_check_views import CACheckActions
from .certificate_archive_views import ArchiveActions
from .certificate_revocation_views import RevocationActions
from .dns_chain_actions import DNSChainActions
from .errors import BadGateway, Conflict, exception_handler
from .permissions import RoleForAction, TokenScope
from .renderers import BrowsableAPIRenderer
from .schema import ErrorSerializer, PortalAutoSchema
from .throttling import TokenRateThrottle


class Pagination(pagination.PageNumberPagination):
    django_paginator_class = KeysFirstPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


PEM_MEDIA_TYPE = "application/pem-certificate-chain"  # RFC 8555, section 9.1


class ErrorsAsJSON(BaseContentNegotiation):
    """For the PEM downloads: the file itself is a plain HttpResponse, so whatever
    DRF renders there is an error, always as JSON (no 406, no ?format=)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None


class PortalViewSet(viewsets.GenericViewSet):
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, TokenScope, RoleForAction]
    throttle_classes = [TokenRateThrottle]
    renderer_classes = [renderers.JSONRenderer, BrowsableAPIRenderer]
    pagination_class = Pagination
    schema = PortalAutoSchema()
    model = None
    filter_class = None
    roles: dict = {}
    # Any id reaches the view, which answers a JSON 404; the router's default
    # pattern would leave "1.5" or "é" to Django's HTML 404 page.
    lookup_value_regex = "[^/]+"

    def get_exception_handler(self):
        return exception_handler

    def base_queryset(self):
        return self.model._default_manager.all()

    def get_queryset(self):
        return scoped(self.base_queryset(), self.request.user)

    def filter_queryset(self, queryset):
        if self.action == "list" and self.filter_class is not None:
            query = self.filter_class(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            queryset = query.apply(queryset)
        # Pages must not overlap: an aggregate's GROUP BY drops Meta.ordering.
        return queryset if queryset.ordered else queryset.order_by("pk")

    def check_permissions(self, request):
        super().check_permissions(request)
        # Creating needs the write role in at least one organisation; which one
        # is checked by the serializer's organisation field.
        role = self.roles.get(self.action)
        if self.action == "create" and role:
            if not organizations_of(request.user, at_least=role).exists():
                raise PermissionDenied(_("This needs the %(role)s role in an organisation.")
                                       % {"role": Role(role).label})


class Audited:
    """Records creation, change and deletion in the audit log; `audited` names
    the (created, changed, deleted) actions. First among the bases, so that it
    wraps the mixins' perform_* methods."""

    audited: tuple = ()

    def _record(self, action, instance, organization=None, subject=None, **params):
        AuditEvent.record(self.request, action=action,
                          organization=organization or instance.organization,
                          certificate=instance if isinstance(instance, Certificate) else None,
                          subject=subject or str(instance), params={**params, "via": "api"})

    def perform_create(self, serializer):
        super().perform_create(serializer)
        self._record(self.audited[0], serializer.instance)

    def perform_update(self, serializer):
        before = snapshot(serializer.instance)
        super().perform_update(serializer)
        self._record(self.audited[1], serializer.instance,
                     **changed(serializer.instance, before))
        # A fix is retried now.
        if isinstance(serializer.instance, Certificate | TargetHost | DNSCredential):
            renewal.retry_after_change(serializer.instance)

    def perform_destroy(self, instance):
        organization, subject = instance.organization, str(instance)
        super().perform_destroy(instance)
        self._record(self.audited[2], None, organization=organization, subject=subject)


CERTIFICATE_ROLES = {"create": Role.OPERATOR, "update": Role.OPERATOR,
                     "partial_update": Role.OPERATOR, "destroy": Role.ADMIN,
                     "renew": Role.OPERATOR, "deploy": Role.OPERATOR,
                     "acme_dns": Role.OPERATOR, "revoke": Role.ADMIN,
                     "archive": Role.ADMIN, "restore": Role.ADMIN}
PEM_RESPONSES = {
    (200, PEM_MEDIA_TYPE): OpenApiResponse(OpenApiTypes.STR, description=_("PEM text")),
    409: OpenApiResponse(ErrorSerializer, description=_("No such issued version.")),
}
CONFLICT = OpenApiResponse(ErrorSerializer, description=_(
    "Not possible in the object's current state; the message says why."))


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
    serializer_class = s.CertificateSerializer
    filter_class = filters.CertificateFilters
    roles = CERTIFICATE_ROLES
    audited = (AuditEvent.Action.CERTIFICATE_CREATED, AuditEvent.Action.CERTIFICATE_CHANGED,
               AuditEvent.Action.CERTIFICATE_DELETED)

    def base_queryset(self):
        return Certificate.objects.annotate(
            current_revoked_at=F("current_version__revoked_at")).prefetch_related(
            "dns_credentials",
            Prefetch("deployments", queryset=Deployment.objects.only("id", "host_id",
                                                                      "certificate_id")))

    @extend_schema(request=s.RenewRequestSerializer,
                   responses={202: s.RunSerializer, 409: CONFLICT}, summary=_("Renew now"),
                   description=_("Starts a renewal run, or returns the one already open. "
                                 "Poll /api/v1/runs/{id}/ until is_open is false. Before "
                                 "the certificate's renewal window it needs force=true and "
                                 "an administrator; 409 past the organisation's daily "
                                 "number of paid renewals."))
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        certificate = self.get_object()
        body = s.RenewRequestSerializer(data=request.data)
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
        response = Response(s.RunSerializer(run, context={"request": request}).data,
                            status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/runs/{run.pk}/"
        return response

    @extend_schema(request=s.DeployRequestSerializer,
                   responses={202: s.RunSerializer, 409: CONFLICT},
                   summary=_("Deploy now"),
                   description=_("Starts a deploy-only run of the current version to the "
                                 "certificate's hosts (or some of them), or returns the run "
                                 "already under way; follow the run for the outcome."))
    @action(detail=True, methods=["post"])
    def deploy(self, request, pk=None):
        certificate = self.get_object()
        body = s.DeployRequestSerializer(data=request.data)
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
        response = Response(s.RunSerializer(run, context={"request": request}).data,
                            status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/runs/{run.pk}/"
        return response

    @extend_schema(responses={200: s.VersionSerializer(many=True)}, summary=_("Versions"))
    @action(detail=True, methods=["get"], serializer_class=s.VersionSerializer,
            filter_class=None)
    def versions(self, request, pk=None):
        certificate = self.get_object()
        page = self.paginate_queryset(certificate.versions.order_by("-not_before", "-pk"))
        return self.get_paginated_response(
            s.VersionSerializer(page, many=True, context={"request": request}).data)

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


HOST_ROLES = {name: Role.ADMIN for name in (
    "create", "update", "partial_update", "destroy", "fetch_host_key", "confirm_host_key",
    "test_connection", "enrolment_code", "revoke_agent")}


@extend_schema_view(list=extend_schema(parameters=[filters.HostFilters]))
class HostViewSet(Audited, AgentHostActions, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                  mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
                  PortalViewSet):
    model = TargetHost
    serializer_class = s.HostSerializer
    filter_class = filters.HostFilters
    roles = HOST_ROLES
    audited = (AuditEvent.Action.HOST_CREATED, AuditEvent.Action.HOST_CHANGED,
               AuditEvent.Action.HOST_DELETED)

    def base_queryset(self):
        return TargetHost.objects.select_related("agent_state").prefetch_related(
            "agent_credentials")

    @extend_schema(request=None, responses={200: s.HostKeySerializer, 502: OpenApiResponse(
                       ErrorSerializer, description=_("The host could not be reached."))},
                   summary=_("Fetch and pin the host key, unconfirmed"),
                   description=_("Connects to the host, stores the key it presents and "
                                 "returns its fingerprint; confirm it with confirm-host-key."))
    @action(detail=True, methods=["post"], url_path="fetch-host-key")
    def fetch_host_key(self, request, pk=None):
        host = self.get_object()
        try:
            enrolment.fetch_and_pin_host_key(host_id=host.pk, by=request.user)
        except ssh.SSHError as exc:
            raise BadGateway(str(exc)) from exc
        host.refresh_from_db()
        return Response({"host_key_fingerprint": host.host_key_fingerprint,
                         "host_key_confirmed": host.host_key_confirmed})

    @extend_schema(request=s.ConfirmHostKeySerializer, responses={200: s.HostKeySerializer},
                   summary=_("Confirm the pinned host key"),
                   description=_("Confirms the pinned key if the fingerprint you compared "
                                 "with the host's is the stored one."))
    @action(detail=True, methods=["post"], url_path="confirm-host-key")
    def confirm_host_key(self, request, pk=None):
        host = self.get_object()
        body = s.ConfirmHostKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            fingerprint = enrolment.confirm_host_key(
                host_id=host.pk, by=request.user, fingerprint=body.validated_data["fingerprint"])
        except DjangoValidationError as exc:
            raise ValidationError({"fingerprint": exc.messages},
                                  code="fingerprint_mismatch") from exc
        AuditEvent.record(request, action=AuditEvent.Action.HOST_KEY_CONFIRMED,
                          organization=host.organization, subject=host.name,
                          params={"fingerprint": fingerprint, "via": "api"})
        host.refresh_from_db()
        return Response({"host_key_fingerprint": host.host_key_fingerprint,
                         "host_key_confirmed": host.host_key_confirmed})

    @extend_schema(request=None, responses={200: s.ConnectionTestSerializer},
                   summary=_("Test the connection"),
                   description=_("Logs in with the pinned key, checks each folder and runs "
                                 "the config test and reload commands; each check reported."))
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None):
        host = self.get_object()
        checks = enrolment.test_connection(host_id=host.pk)
        return Response({"ok": all(c.ok for c in checks),
                         "checks": [{"name": c.name, "label": str(c.label), "ok": c.ok,
                                     "detail": str(c.detail)} for c in checks]})


@extend_schema_view(list=extend_schema(parameters=[filters.DeploymentFilters]))
class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    model = Deployment
    serializer_class = s.DeploymentSerializer
    filter_class = filters.DeploymentFilters

    def base_queryset(self):
        return Deployment.objects.order_by("certificate_id", "host_id")


@extend_schema_view(list=extend_schema(parameters=[filters.RunFilters]),
                    retrieve=extend_schema(description=_(
                        "A run with its steps; poll it while is_open is true.")))
class RenewalRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    model = RenewalRun
    filter_class = filters.RunFilters

    def get_serializer_class(self):
        return s.RunDetailSerializer if self.action == "retrieve" else s.RunSerializer

    def base_queryset(self):
        queryset = RenewalRun.objects.select_related("requested_by")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(
                Prefetch("steps", queryset=RenewalStep.objects.order_by("at", "pk")))
        return queryset


@extend_schema_view(list=extend_schema(parameters=[filters.CAAccountFilters]))
class CAAccountViewSet(CACheckActions, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       PortalViewSet):
    model = CAAccount
    serializer_class = s.CAAccountSerializer
    filter_class = filters.CAAccountFilters
    roles = {"top_up": Role.ADMIN, "test": Role.ADMIN, "move_away": Role.ADMIN}

    def base_queryset(self):
        # Not "balance": that would shadow CAAccount.balance(), which services call.
        return CAAccount.objects.annotate(ledger_balance=Coalesce(
            Sum("ledger__amount"), Value(0), output_field=DecimalField(max_digits=14,
                                                                       decimal_places=2)))

    @extend_schema(responses={200: s.BalanceSerializer}, summary=_("Balance"))
    @action(detail=True, methods=["get"])
    def balance(self, request, pk=None):
        account = self.get_object()
        reserved = account.reserved()
        return Response(s.BalanceSerializer({
            "balance": account.ledger_balance, "reserved": reserved,
            "available": account.ledger_balance - reserved, "currency": account.currency,
            "price": account.price, "low_balance_threshold": account.low_balance_threshold}).data)

    @extend_schema(responses={200: s.LedgerEntrySerializer(many=True)},
                   summary=_("Deposit ledger"))
    @action(detail=True, methods=["get"], serializer_class=s.LedgerEntrySerializer,
            filter_class=None)
    def ledger(self, request, pk=None):
        account = self.get_object()
        page = self.paginate_queryset(account.ledger.select_related("created_by")
                                      .order_by("-created_at", "-pk"))
        return self.get_paginated_response(s.LedgerEntrySerializer(page, many=True).data)

    @extend_schema(responses={200: s.ForecastSerializer}, summary=_("Deposit forecast"),
                   description=_("Renewals due in 30, 60 and 90 days, their cost, and the "
                                 "day the balance runs out."))
    @action(detail=True, methods=["get"])
    def forecast(self, request, pk=None):
        account = self.get_object()
        result = deposit.forecast(account)
        return Response(s.ForecastSerializer({
            "balance": result.balance, "reserved": result.reserved,
            "available": result.available, "price": result.price, "currency": account.currency,
            "horizons": [{"days": days, "renewals": count, "cost": cost}
                         for days, (count, cost) in sorted(result.due.items())],
            "runs_out_on": result.runs_out_on,
            "is_low": result.is_low(account.low_balance_threshold)}).data)

    @extend_schema(request=s.TopUpSerializer, responses={201: s.LedgerEntrySerializer},
                   summary=_("Top up the deposit (administrators)"))
    @action(detail=True, methods=["post"], url_path="top-up")
    def top_up(self, request, pk=None):
        account = self.get_object()
        body = s.TopUpSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            # As the top-up form checks it: no fraction of a yen.
            check_minor_units(body.validated_data["amount"], account.currency, "amount")
        except DjangoValidationError as exc:
            raise ValidationError({"amount": exc.messages}, code="minor_units") from exc
        try:
            entry = deposit.top_up(ca_account=account, amount=body.validated_data["amount"],
                                   note=body.validated_data["note"], by=request.user)
        except deposit.DepositError as exc:
            raise ValidationError({"amount": [str(exc)]}, code="invalid") from exc
        AuditEvent.record(request, action=AuditEvent.Action.TOP_UP,
                          organization=account.organization, subject=account.name,
                          params={"amount": str(entry.amount), "currency": account.currency,
                                  "via": "api"})
        return Response(s.LedgerEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


@extend_schema_view(list=extend_schema(parameters=[filters.OrderFilters]))
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    model = Order
    serializer_class = s.OrderSerializer
    filter_class = filters.OrderFilters


def not_found(request, *args, **kwargs):
    """Any other address under /api/v1/: a 404 in the API's shape, not an HTML page."""
    from django.http import JsonResponse

    from .errors import error_body

    return JsonResponse(error_body(_("Not found."), "not_found"), status=404)

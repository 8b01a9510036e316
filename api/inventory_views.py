"""The inventory's API: /api/v1/inventory/ (unmanaged certificates, import,
export of every certificate, discovery, accepting findings) and
/api/v1/endpoints/ (monitored endpoints and their history)."""

from django.db import transaction
from django.db.models import BooleanField, Case, Value, When
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Role
from accounts.tenancy import organizations_of
from certificates.inventory import (
    adoption,
    discovery,
    discovery_runs,
    importing,
    listing,
    monitoring,
)
from certificates.inventory.parsing import ImportRefused
from certificates.models import AuditEvent, InventoryCertificate, MonitoredEndpoint

from . import inventory_serializers as s
from .certificate_serializers import CertificateSerializer
from .discovery_serializers import DiscoverySerializer
from .errors import Conflict
from .views import CONFLICT, PortalViewSet


@extend_schema_view(
    list=extend_schema(parameters=[s.InventoryFilters],
                       summary=_("Certificates managed elsewhere (imported, discovered)")))
class InventoryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    model = InventoryCertificate
    serializer_class = s.InventoryCertificateSerializer
    filter_class = s.InventoryFilters
    roles = {"import_files": Role.OPERATOR, "discover": Role.OPERATOR,
             "accept": Role.OPERATOR, "dismiss": Role.OPERATOR, "adopt": Role.OPERATOR}

    def base_queryset(self):
        # Whether a key is stored, without reading (and decrypting) any key.
        stored = Case(When(private_key="", then=Value(False)), default=Value(True),
                      output_field=BooleanField())
        return (InventoryCertificate.objects.defer("private_key", "chain_pem")
                .annotate(key_stored=stored).order_by("expires_at", "pk"))

    @extend_schema(request=s.ImportSerializer, responses={201: s.ImportResultSerializer},
                   summary=_("Import certificates (PEM or PKCS#12)"),
                   description=_("All or nothing: a refused input saves nothing, and the "
                                 "error names the field and what is wrong."))
    @action(detail=False, methods=["post"], url_path="import")
    def import_files(self, request):
        given = s.ImportSerializer(data=request.data, context={"request": request})
        given.is_valid(raise_exception=True)
        data = given.validated_data
        try:
            result = importing.import_files(data["organization"], data["files"],
                                            password=data["password"], by=request.user)
        except ImportRefused as exc:
            # The inputs are named after their fields ("pem", "pkcs12"), and so is
            # the input a message names.
            field = "pkcs12" if "pkcs12" in exc.message else "pem"
            return Response({"errors": [{"field": field, "message": exc.message,
                                         "code": "invalid"}]},
                            status=status.HTTP_400_BAD_REQUEST)
        AuditEvent.record(request, action=AuditEvent.Action.CERTIFICATES_IMPORTED,
                          organization=data["organization"],
                          subject=", ".join(str(row) for row in result.rows[:5]),
                          params={"created": len(result.created), "via": "api"})
        body = {"created": result.created, "updated": result.updated,
                "managed": len(result.managed)}
        return Response(s.ImportResultSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: s.ExportRowSerializer(many=True)}, filters=False,
                   summary=_("Every certificate, managed or not, with its audit columns"))
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def export(self, request):
        rows = [{"organization": organization.pk, **row}
                for organization in organizations_of(request.user).order_by("pk")
                for row in listing.export_rows(organization)]
        return Response(s.ExportRowSerializer(rows, many=True).data)

    @extend_schema(request=s.DiscoverSerializer, responses={202: DiscoverySerializer},
                   summary=_("Scan addresses and ports, or read a host's files, for "
                             "TLS certificates"),
                   description=_("Checks the request (addresses within the outbound policy, "
                                 "ports among those the portal scans; or a host enrolled "
                                 "over SSH and absolute paths on it) and queues the "
                                 "discovery for a worker. Poll /api/v1/discoveries/{id}/ "
                                 "until its status is done or failed."))
    @action(detail=False, methods=["post"])
    def discover(self, request):
        given = s.DiscoverSerializer(data=request.data, context={"request": request})
        given.is_valid(raise_exception=True)
        data = given.validated_data
        with transaction.atomic():
            started = discovery_runs.start(
                data["organization"], by=request.user, targets_text=data.get("targets", ""),
                ports_text=data.get("ports", ""), names=data.get("names", []),
                host=data.get("host"), paths=data.get("paths", []))
            AuditEvent.record(request, action=AuditEvent.Action.DISCOVERY_STARTED,
                              organization=data["organization"], subject=str(started),
                              params={"kind": started.kind, "via": "api"})
        body = DiscoverySerializer(started).data
        return Response(body, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": reverse("api:discovery-detail", args=[started.pk])})

    @extend_schema(request=None, responses={200: s.InventoryCertificateSerializer},
                   summary=_("Accept a finding into the inventory"))
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        row = self.get_object()
        discovery.accept([row])
        row.refresh_from_db()
        return Response(self.get_serializer(row).data)

    @extend_schema(request=None, responses={200: s.InventoryCertificateSerializer},
                   summary=_("Dismiss a finding"))
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        row = self.get_object()
        discovery.dismiss([row])
        row.refresh_from_db()
        return Response(self.get_serializer(row).data)


    @extend_schema(request=CertificateSerializer,
                   responses={201: CertificateSerializer, 409: CONFLICT},
                   summary=_("Adopt: make it a certificate the portal renews"),
                   description=_("The body of a new certificate (CA account, challenge, "
                                 "hosts); names and key type default to the unmanaged "
                                 "certificate's. It becomes the new certificate's first "
                                 "version, and the next renewal is planned before it "
                                 "expires. 409 when it was adopted already."))
    @action(detail=True, methods=["post"])
    def adopt(self, request, pk=None):
        row = self.get_object()
        if row.adopted_as_id:
            raise Conflict(_("This certificate was adopted already, as certificate %(id)s.")
                           % {"id": row.adopted_as_id}, code="adopted")
        defaults = adoption.initial(row)
        body = {"organization": row.organization_id, "common_name": defaults["common_name"],
                "sans": defaults["sans"], "key_type": defaults["key_type"]}
        given = request.data.dict() if hasattr(request.data, "dict") else request.data
        if not isinstance(given, dict):
            given = {}
        serializer = CertificateSerializer(data={**body, **given},
                                           context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            certificate = serializer.save()
            adoption.adopt(row, certificate)
        AuditEvent.record(request, action=AuditEvent.Action.CERTIFICATE_ADOPTED,
                          certificate=certificate,
                          params={"fingerprint": row.fingerprint_sha256, "via": "api"})
        return Response(CertificateSerializer(certificate,
                                              context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)


@extend_schema_view(list=extend_schema(summary=_("Monitored TLS endpoints")))
class EndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                      mixins.CreateModelMixin, mixins.DestroyModelMixin, PortalViewSet):
    model = MonitoredEndpoint
    serializer_class = s.EndpointSerializer
    roles = {"create": Role.OPERATOR, "destroy": Role.OPERATOR, "check": Role.OPERATOR}

    def base_queryset(self):
        return MonitoredEndpoint.objects.order_by("address", "port", "sni_name", "pk")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = monitoring.watch(
            data["organization"], address=data["address"], port=data.get("port", 443),
            sni_name=data.get("sni_name", ""),
            protocol=data.get("protocol", MonitoredEndpoint.Protocol.TLS))
        AuditEvent.record(self.request, action=AuditEvent.Action.ENDPOINT_WATCHED,
                          organization=data["organization"], subject=str(serializer.instance),
                          params={"via": "api"})

    def perform_destroy(self, instance):
        AuditEvent.record(self.request, action=AuditEvent.Action.ENDPOINT_STOPPED,
                          organization=instance.organization, subject=str(instance),
                          params={"via": "api"})
        super().perform_destroy(instance)

    @extend_schema(request=None, responses={200: s.EndpointCheckSerializer},
                   summary=_("Check the endpoint now"))
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        endpoint = self.get_object()
        return Response(s.EndpointCheckSerializer(monitoring.check(endpoint.pk)).data)

    @extend_schema(responses={200: s.EndpointCheckSerializer(many=True)},
                   summary=_("The endpoint's checks, newest first"))
    @action(detail=True, methods=["get"])
    def checks(self, request, pk=None):
        endpoint = self.get_object()
        page = self.paginate_queryset(endpoint.checks.order_by("-checked_at", "-pk"))
        return self.get_paginated_response(s.EndpointCheckSerializer(page, many=True).data)

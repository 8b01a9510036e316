"""Incidents in the API: preview a filter, start (administrators), follow the
progress, pause and resume, and the report as CSV (certificates/incidents/)."""

import csv

from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, renderers, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from accounts.models import Organization, Role
from accounts.tenancy import has_role, organizations_of
from certificates.incidents import service
from certificates.incidents.selection import Filter, preview
from certificates.models import CAAccount, Incident, KeyType, RevocationReason

from .errors import Conflict
from .schema import ErrorSerializer
from .views import ErrorsAsJSON, PortalViewSet


class IncidentFilterSerializer(serializers.Serializer):
    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.none())
    ca_account = serializers.PrimaryKeyRelatedField(queryset=CAAccount.objects.none(),
                                                    required=False, allow_null=True)
    issuer_contains = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                            default="")
    issued_before = serializers.DateTimeField(required=False, allow_null=True, default=None)
    key_type = serializers.ChoiceField(choices=KeyType.choices, required=False,
                                       allow_blank=True, default="")
    name_pattern = serializers.CharField(
        required=False, allow_blank=True, max_length=253, default="",
        help_text=_("A pattern of the common name: * for any characters (*.example.com)."))
    tag = serializers.CharField(required=False, allow_blank=True, max_length=50, default="")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is None:  # the schema generator's instance
            return
        user = request.user
        administered = organizations_of(user, at_least=Role.ADMIN)
        self.fields["organization"].queryset = administered
        self.fields["ca_account"].queryset = CAAccount.objects.filter(
            organization__in=administered)

    def validate(self, attrs):
        account = attrs.get("ca_account")
        if account is not None and account.organization_id != attrs["organization"].pk:
            raise serializers.ValidationError(
                {"ca_account": [_("Choose a CA account of the same organisation.")]})
        return attrs

    def chosen(self) -> Filter:
        data = self.validated_data
        account = data.get("ca_account")
        return Filter(ca_account_id=account.pk if account else None,
                      issuer_contains=data["issuer_contains"],
                      issued_before=data["issued_before"], key_type=data["key_type"],
                      name_pattern=data["name_pattern"], tag=data["tag"])


class IncidentStartSerializer(IncidentFilterSerializer):
    name = serializers.CharField(max_length=200)
    deadline = serializers.DateTimeField()
    revoke_old = serializers.BooleanField(default=False)
    revocation_reason = serializers.ChoiceField(choices=RevocationReason.choices,
                                                default=RevocationReason.SUPERSEDED)

    def validate(self, attrs):
        service.check_deadline(attrs["deadline"])  # a ValidationError naming the field
        return super().validate(attrs)


class AccountCostSerializer(serializers.Serializer):
    ca_account = serializers.IntegerField(source="ca_account.pk")
    currency = serializers.CharField(source="ca_account.currency")
    count = serializers.IntegerField()
    total = serializers.DecimalField(max_digits=14, decimal_places=2)
    available = serializers.DecimalField(max_digits=14, decimal_places=2)
    short = serializers.DecimalField(max_digits=14, decimal_places=2)


class HostCountSerializer(serializers.Serializer):
    host = serializers.CharField()
    certificates = serializers.IntegerField()


class PreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    hosts = HostCountSerializer(many=True)
    costs = AccountCostSerializer(many=True)
    can_pay = serializers.BooleanField()


class ProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    replaced = serializers.IntegerField()
    revoked = serializers.IntegerField()
    failing = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    remaining = serializers.IntegerField()
    seconds_left = serializers.FloatField(help_text=_("Until the deadline; negative past it."))
    expected_end = serializers.DateTimeField(allow_null=True)
    reasons = serializers.ListField(child=serializers.ListField())


class IncidentSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    reserved_by_currency = serializers.DictField(
        child=serializers.DecimalField(max_digits=14, decimal_places=2), read_only=True,
        help_text=_("What was held on the deposit at the start, by currency code; "
                    "reserved is their sum."))
    key_type = serializers.CharField(read_only=True,
                                     help_text=_("A key type code; empty: any key type."))

    class Meta:
        model = Incident
        fields = ["id", "organization", "name", "status", "ca_account", "issuer_contains",
                  "issued_before", "key_type", "name_pattern", "tag", "deadline",
                  "revoke_old", "revocation_reason", "reserved", "reserved_by_currency",
                  "created_by", "created_at",
                  "finished_at", "progress"]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj):
        return ProgressSerializer(service.progress(obj)).data


def _preview_data(shown) -> dict:
    return {"count": shown.count, "can_pay": shown.can_pay,
            "hosts": [{"host": name, "certificates": n} for name, n in shown.hosts],
            "costs": AccountCostSerializer(shown.costs, many=True).data}


INCIDENT_ROLES = {"create": Role.ADMIN, "preview": Role.ADMIN, "pause": Role.ADMIN,
                  "resume": Role.ADMIN}
CONFLICT = OpenApiResponse(ErrorSerializer, description=_(
    "Refused: nothing matches, or a deposit cannot pay for every replacement."))


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    model = Incident
    serializer_class = IncidentSerializer
    roles = INCIDENT_ROLES

    @extend_schema(request=IncidentStartSerializer,
                   responses={201: IncidentSerializer, 409: CONFLICT},
                   summary=_("Start an incident (administrators)"),
                   description=_("Reserves the price of every chosen certificate's "
                                 "replacement on the deposits, or refuses with nothing "
                                 "ordered; then replaces them all ahead of routine renewals."))
    def create(self, request):
        body = IncidentStartSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            incident = service.start(
                organization=data["organization"], name=data["name"], chosen=body.chosen(),
                deadline=data["deadline"], revoke_old=data["revoke_old"],
                revocation_reason=data["revocation_reason"], by=request.user, request=request)
        except service.DepositShort as exc:
            raise Conflict(str(exc), code="deposit_short") from exc
        except service.IncidentRefused as exc:
            raise Conflict(str(exc), code="nothing_matches") from exc
        response = Response(IncidentSerializer(incident, context={"request": request}).data,
                            status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/incidents/{incident.pk}/"
        return response

    @extend_schema(request=IncidentFilterSerializer, responses={200: PreviewSerializer},
                   summary=_("Preview an incident (administrators)"),
                   description=_("How many certificates the filter chooses, on which hosts, "
                                 "and their price against each deposit. Nothing is ordered."))
    @action(detail=False, methods=["post"])
    def preview(self, request):
        body = IncidentFilterSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        return Response(_preview_data(preview(body.validated_data["organization"],
                                              body.chosen())))

    def _move(self, request, move):
        incident = self.get_object()
        if not has_role(request.user, incident.organization, Role.ADMIN):
            raise PermissionDenied()
        if not move(incident, by=request.user, request=request):
            raise Conflict(_("The incident is not in a state that allows this."),
                           code="wrong_state")
        incident.refresh_from_db()
        return Response(IncidentSerializer(incident, context={"request": request}).data)

    @extend_schema(request=None, responses={200: IncidentSerializer, 409: CONFLICT},
                   summary=_("Pause an incident"))
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._move(request, service.pause)

    @extend_schema(request=None, responses={200: IncidentSerializer, 409: CONFLICT},
                   summary=_("Resume an incident"))
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._move(request, service.resume)

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(
        OpenApiTypes.STR, description=_("One row per certificate")),
        }, summary=_("The incident's report (CSV)"))
    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer],
            content_negotiation_class=ErrorsAsJSON)
    def report(self, request, pk=None):
        incident = self.get_object()
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="incident-{incident.pk}.csv"'
        writer = csv.writer(response)
        writer.writerow(service.REPORT_COLUMNS)
        for row in service.report_rows(incident):
            writer.writerow(["'" + cell if cell[:1] in "=+-@" else cell for cell in row])
        return response

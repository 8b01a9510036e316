"""The REST API, /api/v1/. Every queryset comes from accounts.tenancy.scoped(), so an
object of another organisation is a 404; the role each action needs is in `roles`.

This module holds the base of every viewset and the runs' and deployments'
viewsets; by subject: certificate_views, host_views, ca_views, settings_views."""

from django.db.models import Prefetch
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, pagination, renderers, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated

from accounts.models import Role
from accounts.tenancy import organizations_of, scoped
from certificates import renewal
from certificates.auditing import changed, snapshot
from certificates.models import (
    AuditEvent,
    CAAccount,
    Certificate,
    Deployment,
    DNSCredential,
    RenewalRun,
    RenewalStep,
    TargetHost,
)
from fujissl_portal.pagination import KeysFirstPaginator

from . import filters
from .authentication import TokenAuthentication
from .errors import exception_handler
from .permissions import RoleForAction, TokenScope
from .renderers import BrowsableAPIRenderer
from .schema import ErrorSerializer, PortalAutoSchema
from .serializers import DeploymentSerializer, RunDetailSerializer, RunSerializer
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
        if isinstance(serializer.instance,
                      Certificate | TargetHost | DNSCredential | CAAccount):
            renewal.retry_after_change(serializer.instance)

    def perform_destroy(self, instance):
        organization, subject = instance.organization, str(instance)
        super().perform_destroy(instance)
        self._record(self.audited[2], None, organization=organization, subject=subject)


CONFLICT = OpenApiResponse(ErrorSerializer, description=_(
    "Not possible in the object's current state; the message says why."))


@extend_schema_view(list=extend_schema(parameters=[filters.DeploymentFilters]))
class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    model = Deployment
    serializer_class = DeploymentSerializer
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
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    def base_queryset(self):
        queryset = RenewalRun.objects.select_related("requested_by")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(
                Prefetch("steps", queryset=RenewalStep.objects.order_by("at", "pk")))
        return queryset


def not_found(request, *args, **kwargs):
    """Any other address under /api/v1/: a 404 in the API's shape, not an HTML page."""
    from django.http import JsonResponse

    from .errors import error_body

    return JsonResponse(error_body(_("Not found."), "not_found"), status=404)

"""/api/v1/discoveries/: the discoveries started with POST
/api/v1/inventory/discover/, to poll until their status is done or failed."""

from django.db.models import Count
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins

from certificates.models import Discovery

from .discovery_serializers import DiscoveryDetailSerializer, DiscoverySerializer
from .views import PortalViewSet


@extend_schema_view(
    list=extend_schema(summary=_("Discoveries, newest first")),
    retrieve=extend_schema(summary=_("A discovery's status, progress and findings so far")))
class DiscoveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    model = Discovery

    def get_serializer_class(self):
        return DiscoveryDetailSerializer if self.action == "retrieve" else DiscoverySerializer

    def base_queryset(self):
        return (Discovery.objects.annotate(found_count=Count("findings"))
                .order_by("-created_at", "-pk"))

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from . import (
    ca_views,
    certificate_views,
    channel_views,
    discovery_views,
    dns_credential_views,
    host_views,
    incident_views,
    inventory_views,
    organization_views,
    settings_views,
    tokens,
    views,
)

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("certificates", certificate_views.CertificateViewSet, basename="certificate")
router.register("hosts", host_views.HostViewSet, basename="host")
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("runs", views.RenewalRunViewSet, basename="run")
router.register("ca-accounts", ca_views.CAAccountViewSet, basename="ca-account")
router.register("orders", ca_views.OrderViewSet, basename="order")
router.register("dns-credentials", dns_credential_views.DNSCredentialViewSet,
                basename="dns-credential")
router.register("inventory", inventory_views.InventoryViewSet, basename="inventory")
router.register("endpoints", inventory_views.EndpointViewSet, basename="endpoint")
router.register("discoveries", discovery_views.DiscoveryViewSet, basename="discovery")
router.register("incidents", incident_views.IncidentViewSet, basename="incident")
router.register("webhooks", settings_views.WebhookViewSet, basename="webhook")
router.register("channels", channel_views.ChannelViewSet, basename="channel")
router.register("organizations", organization_views.OrganizationViewSet,
                basename="organization")
router.register("members", organization_views.MemberViewSet, basename="member")
router.register("invitations", settings_views.InvitationViewSet, basename="invitation")

app_name = "api"
urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI only: drf-spectacular's Redoc page loads Google Fonts, a CDN. The
    # split view serves its start-up script as a file, which the CSP allows.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema",
                                                      template_name="api/swagger_ui.html"),
         name="docs"),
    path("tokens/", tokens.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", tokens.revoke_token, name="revoke-token"),
    re_path(r"^v1/", views.not_found),
]

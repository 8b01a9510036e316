"""A certificate's DNS-01 actions: where each name's TXT record goes, and its
acme-dns registrations. Apart from certificate_views.py to keep that module within its size."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from certificates.dns01 import acme_dns_names, publishing
from certificates.seams.errors import PortalError

from .errors import Conflict
from .schema import ErrorSerializer


class DNSPlacementSerializer(serializers.Serializer):
    name = serializers.CharField()
    chain = serializers.ListField(child=serializers.CharField(), help_text=_(
        "_acme-challenge.<name>, then each CNAME target; the TXT record goes to the last."))
    credential = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(help_text=_("Why no credential can write it; else empty."))


class AcmeDNSDelegationSerializer(serializers.Serializer):
    name = serializers.CharField()
    record = serializers.CharField(help_text=_("The CNAME to create: its owner."))
    target = serializers.CharField(help_text=_("The CNAME's target, the registration's name."))


class DNSChainActions:
    """Mixed into the certificate viewset."""

    @extend_schema(request=None, responses={200: DNSPlacementSerializer(many=True)},
                   summary=_("Where each name's DNS-01 TXT record goes"),
                   description=_("Follows each name's _acme-challenge CNAME chain against "
                                 "the authoritative servers and names the credential that "
                                 "writes at its end."))
    @action(detail=True, methods=["get"], url_path="dns-chains", filter_class=None)
    def dns_chains(self, request, pk=None):
        certificate = self.get_object()  # type: ignore[attr-defined]
        credentials = list(certificate.dns_credentials.all())
        rows = []
        for name in certificate.names():
            try:
                placed = publishing.place(certificate, name, credentials)
            except PortalError as exc:
                rows.append({"name": name, "chain": [], "credential": None, "error": str(exc)})
            else:
                rows.append({"name": name, "chain": list(placed.chain),
                             "credential": placed.credential.pk, "error": ""})
        return Response(rows)

    @extend_schema(request=None, responses={
        200: AcmeDNSDelegationSerializer(many=True),
        409: OpenApiResponse(ErrorSerializer, description=_(
            "The certificate has no acme-dns credential, or acme-dns refused."))},
        summary=_("Register the names with acme-dns"),
        description=_("Registers each name not registered yet with the certificate's acme-dns "
                      "credential and returns the CNAME each needs."))
    @action(detail=True, methods=["post"], url_path="acme-dns", filter_class=None)
    def acme_dns(self, request, pk=None):
        certificate = self.get_object()  # type: ignore[attr-defined]
        try:
            made = acme_dns_names.delegations(certificate)
        except PortalError as exc:
            raise Conflict(str(exc), code="acme_dns") from exc
        if not made:
            raise Conflict(_("Choose an acme-dns credential for the certificate first."),
                           code="no_acme_dns_credential")
        return Response([{"name": d.name, "record": d.record, "target": d.target}
                         for d in made])

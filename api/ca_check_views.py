"""The CA account's "test" action: its settings checked with the CA, apart from
views.py to keep that module within its size."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from certificates.renewal import ca_check


class CAProblemSerializer(serializers.Serializer):
    field = serializers.CharField(help_text=_("The CA account's setting at fault."))
    message = serializers.CharField()


class CACheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    problems = CAProblemSerializer(many=True)


class CACheckActions:
    """Mixed into the CA account viewset."""

    @extend_schema(request=None, responses={200: CACheckSerializer},
                   summary=_("Test the CA account (administrators)"),
                   description=_("Fetches the CA's directory, checks that it is ACME and, "
                                 "with an EAB key or when the CA requires one, registers "
                                 "the account; each problem names its setting."))
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        problems = ca_check.check_stored(self.get_object())  # type: ignore[attr-defined]
        return Response({"ok": not problems,
                         "problems": [{"field": p.field, "message": p.message}
                                      for p in problems]})

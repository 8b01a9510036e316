"""The CA account's "test" and "move away" actions: its settings checked with
the CA, and its certificates moved to their fallback; apart from ca_views.py to
keep that module within its size."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from certificates.renewal import ca_check, fallback


class CAProblemSerializer(serializers.Serializer):
    field = serializers.CharField(help_text=_("The CA account's setting at fault."))
    message = serializers.CharField()


class CACheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    problems = CAProblemSerializer(many=True)


class MoveAwaySerializer(serializers.Serializer):
    moved = serializers.ListField(child=serializers.IntegerField(), help_text=_(
        "Ids of the certificates that renew through their fallback CA account from now on."))
    stranded = serializers.ListField(child=serializers.IntegerField(), help_text=_(
        "Ids of the certificates with no fallback CA account: they stay."))


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

    @extend_schema(request=None, responses={200: MoveAwaySerializer},
                   summary=_("Move every certificate away from the CA (administrators)"),
                   description=_("For a distrusted CA: every certificate of the account renews "
                                 "at once through its fallback CA account, whose price and "
                                 "deposit apply; nothing falls back to this account any more."))
    @action(detail=True, methods=["post"], url_path="move-away")
    def move_away(self, request, pk=None):
        result = fallback.move_away(ca_account=self.get_object(),  # type: ignore[attr-defined]
                                    by=request.user, request=request)
        return Response({"moved": result.moved, "stranded": result.stranded})

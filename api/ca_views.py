"""The CA accounts' endpoints (balance, ledger, forecast, top-up) and the orders."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import DecimalField, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.models import Role
from certificates.formatting import check_minor_units
from certificates.models import (
    AuditEvent,
    CAAccount,
    Order,
)
from certificates.renewal import deposit

from . import filters
from .ca_check_views import CACheckActions
from .ca_serializers import (
    BalanceSerializer,
    CAAccountSerializer,
    ForecastSerializer,
    LedgerEntrySerializer,
    OrderSerializer,
    TopUpSerializer,
)
from .views import Audited, PortalViewSet

CA_SAVED = _("Saved only if the CA accepts the settings: its directory is fetched and "
             "checked to be ACME and an EAB key is checked by registering the account; "
             "otherwise 400 with the problem under the setting at fault.")


@extend_schema_view(list=extend_schema(parameters=[filters.CAAccountFilters]),
                    create=extend_schema(summary=_("Add a CA account (administrators)"),
                                         description=CA_SAVED),
                    update=extend_schema(description=CA_SAVED),
                    partial_update=extend_schema(description=CA_SAVED))
class CAAccountViewSet(Audited, CACheckActions, mixins.ListModelMixin,
                       mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                       mixins.UpdateModelMixin, PortalViewSet):
    model = CAAccount
    serializer_class = CAAccountSerializer
    filter_class = filters.CAAccountFilters
    roles = {name: Role.ADMIN for name in (
        "create", "update", "partial_update", "top_up", "test", "move_away")}
    audited = (AuditEvent.Action.CA_ACCOUNT_CREATED, AuditEvent.Action.CA_ACCOUNT_CHANGED,
               AuditEvent.Action.CA_ACCOUNT_DELETED)

    def perform_create(self, serializer):
        super().perform_create(serializer)
        serializer.instance.ledger_balance = serializer.instance.balance()

    def base_queryset(self):
        # Not "balance": that would shadow CAAccount.balance(), which services call.
        return CAAccount.objects.annotate(ledger_balance=Coalesce(
            Sum("ledger__amount"), Value(0), output_field=DecimalField(max_digits=14,
                                                                       decimal_places=2)))

    @extend_schema(responses={200: BalanceSerializer}, summary=_("Balance"))
    @action(detail=True, methods=["get"])
    def balance(self, request, pk=None):
        account = self.get_object()
        reserved = account.reserved()
        return Response(BalanceSerializer({
            "balance": account.ledger_balance, "reserved": reserved,
            "available": account.ledger_balance - reserved, "currency": account.currency,
            "price": account.price, "low_balance_threshold": account.low_balance_threshold}).data)

    @extend_schema(responses={200: LedgerEntrySerializer(many=True)},
                   summary=_("Deposit ledger"))
    @action(detail=True, methods=["get"], serializer_class=LedgerEntrySerializer,
            filter_class=None)
    def ledger(self, request, pk=None):
        account = self.get_object()
        page = self.paginate_queryset(account.ledger.select_related("created_by")
                                      .order_by("-created_at", "-pk"))
        return self.get_paginated_response(LedgerEntrySerializer(page, many=True).data)

    @extend_schema(responses={200: ForecastSerializer}, summary=_("Deposit forecast"),
                   description=_("Renewals due in 30, 60 and 90 days, their cost, and the "
                                 "day the balance runs out."))
    @action(detail=True, methods=["get"])
    def forecast(self, request, pk=None):
        account = self.get_object()
        result = deposit.forecast(account)
        return Response(ForecastSerializer({
            "balance": result.balance, "reserved": result.reserved,
            "available": result.available, "price": result.price, "currency": account.currency,
            "horizons": [{"days": days, "renewals": count, "cost": cost}
                         for days, (count, cost) in sorted(result.due.items())],
            "runs_out_on": result.runs_out_on,
            "is_low": result.is_low(account.low_balance_threshold)}).data)

    @extend_schema(request=TopUpSerializer, responses={201: LedgerEntrySerializer},
                   summary=_("Top up the deposit (administrators)"))
    @action(detail=True, methods=["post"], url_path="top-up")
    def top_up(self, request, pk=None):
        account = self.get_object()
        body = TopUpSerializer(data=request.data)
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
        return Response(LedgerEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


@extend_schema_view(list=extend_schema(parameters=[filters.OrderFilters]))
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    model = Order
    serializer_class = OrderSerializer
    filter_class = filters.OrderFilters

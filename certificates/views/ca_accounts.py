"""CA accounts with their deposit (balance, forecast, ledger, top-up), and orders."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.signin import ensure_recent_authentication
from accounts.tenancy import get_scoped_or_404, scoped
from certificates.renewal import ca_check, deposit, fallback, scheduling

from ..auditing import changed, snapshot
from ..formatting import format_amount
from ..forms import CAAccountForm, TopUpForm
from ..models import AuditEvent, CAAccount, Order
from .common import enter, paginate, portal_view, query_without_page, require, roles
from .dashboard import deposit_cards
from .ledger import with_references


@portal_view
def ca_account_list(request):
    accounts = scoped(CAAccount, request.user).filter(organization=request.organization)
    return render(request, "certificates/ca_account_list.html", {
        "deposit_cards": deposit_cards(accounts), **roles(request)})


def _fetch(request, pk):
    account = get_scoped_or_404(CAAccount.objects.select_related("organization",
                                                                 "fallback_ca_account"),
                                request.user, pk=pk)
    enter(request, account.organization)
    return account


def _page(request, account, form=None):
    outlook = deposit.forecast(account)
    ledger = paginate(request, account.ledger.select_related("created_by"), 25)
    ledger.object_list = with_references(ledger.object_list)
    return render(request, "certificates/ca_account_detail.html", {
        "ca_account": account,
        "forecast": outlook,
        "horizons": [(days, *outlook.due[days]) for days in sorted(outlook.due)],
        "low": outlook.is_low(account.low_balance_threshold),
        "ledger": ledger,
        "query": query_without_page(request),
        "orders": account.orders.select_related("certificate")[:20],
        "certificate_count": account.certificates.count(),
        "stranded": fallback.stranded_count(account),
        "form": form or TopUpForm(currency=account.currency),
        **roles(request),
    })


@portal_view
def ca_account_detail(request, pk):
    return _page(request, _fetch(request, pk))


@require_POST
@portal_view
def top_up(request, pk):
    account = _fetch(request, pk)
    require(request, Role.ADMIN)
    form = TopUpForm(request.POST, currency=account.currency)
    if form.is_valid():
        try:
            deposit.top_up(ca_account=account, amount=form.cleaned_data["amount"],
                           note=form.cleaned_data["note"], by=request.user)
        except deposit.DepositError as exc:
            form.add_error("amount", str(exc))
        else:
            AuditEvent.record(request, action=AuditEvent.Action.TOP_UP, subject=account.name,
                              params={"amount": str(form.cleaned_data["amount"]),
                                      "currency": account.currency})
            messages.success(request, _("Top-up of %(amount)s recorded.") % {
                "amount": format_amount(form.cleaned_data["amount"], account.currency)})
            return redirect("certificates:ca_account", account.pk)
    return _page(request, account, form)


@portal_view
def order_list(request):
    orders = scoped(Order, request.user).filter(organization=request.organization)
    status = request.GET.get("status", "")
    if status in Order.Status.values:
        orders = orders.filter(status=status)
    return render(request, "certificates/order_list.html", {
        "page": paginate(request, orders.select_related("ca_account", "certificate")),
        "query": query_without_page(request),
        "statuses": Order.Status.choices,
        "status": status,
        **roles(request),
    })


@portal_view
def order_detail(request, pk):
    order = get_scoped_or_404(Order.objects.select_related("ca_account", "certificate",
                                                           "organization"),
                              request.user, pk=pk)
    enter(request, order.organization)
    return render(request, "certificates/order_detail.html", {"order": order,
                                                               **roles(request)})


def _form_page(request, form, account=None):
    return render(request, "certificates/ca_account_form.html",
                  {"form": form, "ca_account": account, **roles(request)})


def _accepted(form):
    """Whether the CA takes the form's settings; what it refused goes on the fields.

    Only a change of what reaches the CA is checked: a new price needs no CA.
    """
    touched = set(form.changed_data) & set(ca_check.CONNECTION_FIELDS)
    if not form.data.get("eab_hmac_key"):
        touched.discard("eab_hmac_key")  # left blank: the stored key is kept
    if form.instance.pk and not touched:
        return True
    if "directory_url" in form.changed_data:
        # The account URL belongs to the old CA; the new one registers afresh.
        form.instance.account_url = ""
    problems = ca_check.check(form.instance)
    for problem in problems:
        form.add_error(problem.field, problem.message)
    return not problems


@portal_view
def ca_account_create(request):
    require(request, Role.ADMIN)
    form = CAAccountForm(request.POST or None, organization=request.organization)
    if request.method == "POST" and form.is_valid() and _accepted(form):
        account = form.save()
        AuditEvent.record(request, action=AuditEvent.Action.CA_ACCOUNT_CREATED,
                          subject=account.name)
        messages.success(request, _("CA account %(name)s added.") % {"name": account.name})
        return redirect("certificates:ca_account", account.pk)
    return _form_page(request, form)


@portal_view
def ca_account_edit(request, pk):
    account = _fetch(request, pk)
    require(request, Role.ADMIN)
    before = snapshot(account)
    form = CAAccountForm(request.POST or None, instance=account,
                         organization=account.organization)
    if request.method == "POST" and form.is_valid() and _accepted(form):
        form.save()
        AuditEvent.record(request, action=AuditEvent.Action.CA_ACCOUNT_CHANGED,
                          subject=account.name, params=changed(account, before))
        # The failures this account caused may be fixed: retried now, not in a day.
        scheduling.retry_after_change(account)
        messages.success(request, _("Changes saved."))
        return redirect("certificates:ca_account", account.pk)
    return _form_page(request, form, account)


@require_POST
@portal_view
def ca_account_test(request, pk):
    """Checks the stored settings with the CA and says what it found."""
    account = _fetch(request, pk)
    require(request, Role.ADMIN)
    problems = ca_check.check_stored(account)
    for problem in problems:
        messages.error(request, problem.message)
    if not problems:
        messages.success(request, _("The CA answered and accepts the account's settings."))
    return redirect("certificates:ca_account", account.pk)


@require_POST
@portal_view
def ca_account_move_away(request, pk):
    """The distrust case: every certificate of the account renews through its
    fallback from now on; one audit entry for the whole action. After
    re-authentication: it orders a replacement of every certificate at once, at
    another CA's price, and the account is abandoned for good."""
    account = _fetch(request, pk)
    require(request, Role.ADMIN)
    ensure_recent_authentication(request)
    result = fallback.move_away(ca_account=account, by=request.user, request=request)
    messages.success(request, _("%(moved)s certificate(s) moved to their fallback CA account.")
                     % {"moved": len(result.moved)})
    if result.stranded:
        messages.error(request, _("%(count)s certificate(s) have no fallback CA account and "
                                  "stay on %(name)s: give them one, or another CA account.")
                       % {"count": len(result.stranded), "name": account.name})
    return redirect("certificates:ca_account", account.pk)

"""Webhooks in the browser (the API has had them): the list with each one's
last deliveries, adding and editing one (the signing secret write-only, asked
again when the URL changes), and removing it. Administrators only: a webhook's
URL and secret are configuration."""

from django import forms
from django.contrib import messages
from django.db.models import Prefetch
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.tenancy import get_scoped_or_404, scoped
from api.models import Event, Webhook, WebhookDelivery

from ..auditing import changed, snapshot
from ..forms import KeepSecretMixin, SecretInput, https_by_default
from ..models import AuditEvent
from .common import enter, portal_view, require, roles

DELIVERIES_SHOWN = 5


class WebhookForm(KeepSecretMixin, forms.ModelForm):
    secret_fields = ("secret",)

    events = forms.MultipleChoiceField(label=gettext_lazy("Events"), choices=Event.choices,
                                       widget=forms.CheckboxSelectMultiple)

    class Meta:
        formfield_callback = https_by_default  # a bare host name means https
        model = Webhook
        fields = ["url", "secret", "events", "active"]
        widgets = {"secret": SecretInput()}

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.organization = organization
        if self.instance.pk:
            self.fields["secret"].required = False
            self.fields["secret"].help_text = _("Leave blank to keep the stored secret.")


def _fetch(request, pk):
    webhook = get_scoped_or_404(Webhook.objects.select_related("organization"), request.user,
                                pk=pk)
    enter(request, webhook.organization)
    return webhook


@portal_view
def webhook_list(request):
    require(request, Role.ADMIN)
    recent = WebhookDelivery.objects.order_by("-created_at", "-pk")
    hooks = scoped(Webhook, request.user).filter(organization=request.organization).defer(
        "secret").prefetch_related(Prefetch("deliveries", queryset=recent))
    rows = [(hook, list(hook.deliveries.all())[:DELIVERIES_SHOWN]) for hook in hooks]
    return render(request, "certificates/webhook_list.html", {
        "rows": rows, "events": dict(Event.choices), **roles(request)})


def _form_page(request, form, webhook=None):
    return render(request, "certificates/webhook_form.html",
                  {"form": form, "webhook": webhook, **roles(request)})


@portal_view
def webhook_create(request):
    require(request, Role.ADMIN)
    form = WebhookForm(request.POST or None, organization=request.organization)
    if request.method == "POST" and form.is_valid():
        webhook = form.save()
        AuditEvent.record(request, action=AuditEvent.Action.WEBHOOK_CREATED,
                          subject=webhook.url)
        messages.success(request, _("Webhook added."))
        return redirect("certificates:webhooks")
    return _form_page(request, form)


@portal_view
def webhook_edit(request, pk):
    webhook = _fetch(request, pk)
    require(request, Role.ADMIN)
    before = snapshot(webhook)
    form = WebhookForm(request.POST or None, instance=webhook,
                       organization=webhook.organization)
    if request.method == "POST" and form.is_valid():
        form.save()
        AuditEvent.record(request, action=AuditEvent.Action.WEBHOOK_CHANGED,
                          subject=webhook.url, params=changed(webhook, before))
        messages.success(request, _("Changes saved."))
        return redirect("certificates:webhooks")
    return _form_page(request, form, webhook)


@require_POST
@portal_view
def webhook_delete(request, pk):
    webhook = _fetch(request, pk)
    require(request, Role.ADMIN)
    url = webhook.url
    webhook.delete()
    AuditEvent.record(request, action=AuditEvent.Action.WEBHOOK_DELETED, subject=url)
    messages.success(request, _("Webhook removed."))
    return redirect("certificates:webhooks")

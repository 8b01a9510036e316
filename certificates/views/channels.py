"""Notification channels in the browser: the list, adding and editing one (an
apprise URL, the alerts it takes, its readers' language), a test message, and
removing it. Administrators only: a channel's URL holds its secrets."""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.tenancy import get_scoped_or_404, scoped

from ..auditing import changed, snapshot
from ..forms import KeepSecretMixin, SecretInput
from ..models import AuditEvent, Notification, NotificationChannel
from ..notify import channels
from .common import enter, portal_view, require, roles


class ChannelForm(KeepSecretMixin, forms.ModelForm):
    secret_fields = ("url",)

    kinds = forms.MultipleChoiceField(
        label=gettext_lazy("Alerts sent"), choices=Notification.Kind.choices, required=False,
        widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = NotificationChannel
        fields = ["name", "url", "kinds", "language", "enabled"]
        widgets = {"url": SecretInput(attrs={"spellcheck": "false"})}

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.organization = organization
        if self.instance.pk:
            self.fields["url"].required = False
            self.fields["url"].help_text = _("Leave blank to keep the stored URL (%(shown)s).") \
                % {"shown": self.instance.shown}
        else:
            self.initial.setdefault("kinds", [Notification.Kind.RENEWAL_FAILED,
                                              Notification.Kind.DEPOSIT_LOW])

    def clean_url(self):
        url = self.cleaned_data.get("url", "").strip()
        if url:
            try:
                self.instance.shown = channels.describe(url)
            except channels.ChannelError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return url

    def validate_unique(self):
        try:
            self.instance.validate_constraints()
        except forms.ValidationError as exc:
            self._update_errors(exc)


def _fetch(request, pk):
    channel = get_scoped_or_404(NotificationChannel.objects.select_related("organization"),
                                request.user, pk=pk)
    enter(request, channel.organization)
    return channel


@portal_view
def channel_list(request):
    require(request, Role.ADMIN)
    listed = scoped(NotificationChannel, request.user).filter(
        organization=request.organization).defer("url")
    return render(request, "certificates/channel_list.html",
                  {"channels": listed, "kinds": dict(Notification.Kind.choices),
                   **roles(request)})


def _form_page(request, form, channel=None):
    return render(request, "certificates/channel_form.html",
                  {"form": form, "channel": channel, **roles(request)})


@portal_view
def channel_create(request):
    require(request, Role.ADMIN)
    form = ChannelForm(request.POST or None, organization=request.organization)
    if request.method == "POST" and form.is_valid():
        channel = form.save()
        AuditEvent.record(request, action=AuditEvent.Action.CHANNEL_CREATED,
                          subject=channel.name)
        messages.success(request, _("Channel %(name)s added. Send a test message to see it "
                                    "arrive.") % {"name": channel.name})
        return redirect("certificates:channels")
    return _form_page(request, form)


@portal_view
def channel_edit(request, pk):
    channel = _fetch(request, pk)
    require(request, Role.ADMIN)
    before = snapshot(channel)
    form = ChannelForm(request.POST or None, instance=channel,
                       organization=channel.organization)
    if request.method == "POST" and form.is_valid():
        form.save()
        AuditEvent.record(request, action=AuditEvent.Action.CHANNEL_CHANGED,
                          subject=channel.name, params=changed(channel, before))
        messages.success(request, _("Changes saved."))
        return redirect("certificates:channels")
    return _form_page(request, form, channel)


@require_POST
@portal_view
def channel_delete(request, pk):
    channel = _fetch(request, pk)
    require(request, Role.ADMIN)
    name = channel.name
    channel.delete()
    AuditEvent.record(request, action=AuditEvent.Action.CHANNEL_DELETED, subject=name)
    messages.success(request, _("Channel %(name)s removed.") % {"name": name})
    return redirect("certificates:channels")


@require_POST
@portal_view
def channel_test(request, pk):
    """A test message, sent now (the person waits a moment for the answer)."""
    channel = _fetch(request, pk)
    require(request, Role.ADMIN)
    ok, error = channels.test(channel, by=request.user)
    if ok:
        messages.success(request, _("Test message sent to %(name)s.") % {"name": channel.name})
    else:
        messages.error(request, _("The test message to %(name)s was not sent: %(error)s")
                       % {"name": channel.name, "error": error})
    return redirect("certificates:channels")

"""Stored messages in API answers (certificates.messages): the text in the
request's language (Accept-Language), beside the message's key and parameters,
which tools act on and which stay the same in every language."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers


def message_text(source: str) -> serializers.CharField:
    """The message a model's property ``source`` returns, in the request's language."""
    return serializers.CharField(source=source, read_only=True, help_text=_(
        "In the request's language (Accept-Language); its key and parameters are beside it."))


def message_key() -> serializers.CharField:
    return serializers.CharField(read_only=True, help_text=_(
        "The message's key, the same in every language; empty for rows from before keys."))


def message_params() -> serializers.JSONField:
    return serializers.JSONField(read_only=True, help_text=_(
        "The message's parameters (a CA's problem document as the CA sent it, under "
        "\"problem\")."))

"""What the validator tests share: settings for a run without pytest-django
(``--noconftest -p no:django``: they need no database), and ``rejects``."""

import django
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

if not settings.configured:  # standalone run; pytest-django configures the project's settings
    settings.configure(USE_I18N=True)
    django.setup()


def rejects(func, value, *, code, label=None, **kwargs) -> str:
    """Call ``func``, expect exactly one error with ``code``; return its message.

    With ``label``, the field name is passed in and must start the message.
    """
    if label is not None:
        kwargs["label"] = label
    with pytest.raises(ValidationError) as info:
        func(value, **kwargs)
    assert [error.code for error in info.value.error_list] == [code]
    (message,) = info.value.messages
    if label is not None:
        assert message.startswith(label), message
    return message

"""Events of the renewal system that other parts of the portal may act on.

`portal_event` is sent with `event` (a name such as "renewal.succeeded"),
`organization` and `payload` (JSON-ready values). The API app turns them into
signed webhooks; certificates/ itself knows nothing of webhooks.
"""

from django.dispatch import Signal

portal_event = Signal()


def announce(event: str, *, organization, payload: dict) -> None:
    portal_event.send(sender=None, event=event, organization=organization, payload=payload)

"""What the page tests share: a page fetched by the test client, which must render."""

from django.urls import reverse


def page(client, name, *args, **params):
    """The HTML of the page named ``name`` (a URL name), after asserting it rendered."""
    response = client.get(reverse(name, args=args), params)
    assert response.status_code == 200, (name, response.status_code)
    return response.content.decode()

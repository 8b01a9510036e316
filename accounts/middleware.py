from django.utils import translation


class UserLanguageMiddleware:
    """A signed-in person's preferred language wins over the browser's.

    Placed after LocaleMiddleware and AuthenticationMiddleware, which it overrides.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = getattr(getattr(request, "user", None), "language", "")
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)

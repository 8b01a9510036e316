"""The browsable API under the Content-Security-Policy.

DRF's page carries an inline <style> (Pygments' colours) and style attributes
(the "Extra Actions" and "Filters" buttons), so its HTML answers allow inline
styles; scripts stay as strict as everywhere else (DRF's are files, and its
CSRF token is a JSON data block, which is not run).
"""

from rest_framework import renderers


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None:
            response._csp_update = {"style-src": ["'unsafe-inline'"]}
        return super().render(data, accepted_media_type, renderer_context)

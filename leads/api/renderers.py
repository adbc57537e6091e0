"""The browsable API's HTML renderer, with the one exception to our Content Security Policy it needs.

DRF's page templates (rest_framework/base.html and its filter and form snippets) carry a <style>
block (the code highlighting) and style="..." attributes on the format and filter buttons. Styles
are the only thing the policy refuses there (its scripts are files, its CSRF token a JSON data
block), so these HTML pages alone allow inline styles (style-src 'unsafe-inline'); scripts stay
'self' only. JSON responses and every other page keep the full policy.
"""

from csp.decorators import csp_update
from rest_framework.renderers import BrowsableAPIRenderer

BROWSABLE_API_CSP = {"style-src": ["'unsafe-inline'"]}


class CSPBrowsableAPIRenderer(BrowsableAPIRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        html = super().render(data, accepted_media_type, renderer_context)
        response = (renderer_context or {}).get("response")
        if response is not None:
            # django-csp's decorators mark the response a view returns; apply them to this one, for
            # the enforced policy and the report-only one (whichever CSP_REPORT_ONLY picked).
            for report_only in (False, True):
                csp_update(BROWSABLE_API_CSP, REPORT_ONLY=report_only)(lambda: response)()
        return html

"""The interactive API page of `anl serve`: Swagger UI over the whole OpenAPI document (the ingest
routes and the query routes, as committed in openapi.json), readable on a phone.

Powertools' own Swagger route would describe the query function only; this page renders the document
`anl openapi` writes, with the Swagger UI that Powertools ships (inlined: the page loads nothing from
elsewhere).
"""

from __future__ import annotations

from pathlib import Path

from aws_lambda_powertools.event_handler.openapi import swagger_ui
from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

TITLE = "Analytics API"
DOCUMENT_PATH = "/openapi.json"
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'


def api_page(document: str) -> bytes:
    """The page, with `document` (the OpenAPI JSON) inlined."""
    assets = Path(swagger_ui.__file__).parent
    html = generate_swagger_html(
        # </ inside a <script> would end it: JSON allows the escaped form
        spec=document.replace("</", "<\\/"),
        swagger_js=(assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        swagger_css=(assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
    )
    head = f'<meta charset="UTF-8">\n    {VIEWPORT}'
    html = html.replace('<meta charset="UTF-8">', head, 1)
    html = html.replace("<title>Swagger UI</title>", f"<title>{TITLE}</title>", 1)
    # the link the page shows for its document: the served one (this page answers no ?format=json)
    html = html.replace('currentUrl.pathname + "?format=json"', f'"{DOCUMENT_PATH}"', 1)
    if VIEWPORT not in html or f"<title>{TITLE}</title>" not in html or DOCUMENT_PATH not in html:
        raise RuntimeError("the Swagger UI page's head changed: the API page needs its viewport and title")
    return html.encode("utf-8")

"""HTML to plain text, for previews and full-text search.

inscriptis (Apache-2.0, on lxml) lays out tables and lists the way a reader sees them, so
search matches and previews read like the rendered message. It imports nothing of ours.
"""

import re

from inscriptis import get_text
from inscriptis.model.config import ParserConfig

_CONFIG = ParserConfig(display_links=False, display_images=False)
_TAG = re.compile(r"<[^>]*>")


def html_to_text(html: str) -> str:
    """The text a reader sees in `html`; never raises on broken markup."""
    # lxml refuses NUL characters in a document: mail in the wild carries them.
    html = html.replace("\x00", "")
    try:
        return get_text(html, _CONFIG)
    except Exception:  # noqa: BLE001 - lxml's errors on hostile markup are many and undocumented
        # A crude fallback beats losing the message's text for search and preview.
        return _TAG.sub(" ", html)

"""The site's origins (ALLOWED_ORIGINS): a browser names the page that sends a request in `Origin`.

A browser sets `Origin` on every cross-origin POST (a page's script cannot change it), so a page of
another site that makes its visitors' browsers send beacons is told apart by it. A request without
`Origin` (the site's backend, curl) is not judged by it: anyone outside a browser can send any header.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(value: str) -> str | None:
    """`scheme://host[:port]` in its serialized form (lower case, no default port), or None when the
    value is not an origin (a path, a query, credentials, an opaque `null`)."""
    if len(value) > 2048 or not value.isascii():
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in value or "#" in value:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    suffix = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{suffix}"


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """True when no origins are configured, the request names none, or it names one of them.

    An `Origin` that is not an origin at all (`null`, from a sandboxed frame or a file) is another
    origin: it is not the site.
    """
    if not allowed or origin is None:
        return True
    return normalise_origin(origin) in allowed

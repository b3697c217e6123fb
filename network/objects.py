from registry.composites import RateChoice
from registry.declaration import ObjectType, register

from . import models
from .pipeline import drop_config


def _dropped(obj=None):
    drop_config()


HTTP = register(ObjectType(
    model=models.Http, name="Http", singleton=True, section="Settings › Network › HTTP",
    description="Access rule, response headers, CORS, HSTS, forwarded addresses and rate limits of the HTTP service.",
    # The groups keep the properties' order of the JSON faces; the reference's menu shows them
    # on two pages, HTTP › General and HTTP › Security.
    groups=[
        ("Access control", ["allowed_endpoints"]),
        ("Client address", ["use_x_forwarded"]),
        ("Strict transport security", ["enable_hsts"]),
        ("Response headers", ["response_headers"]),
        ("Cross-origin requests", ["use_permissive_cors"]),
        ("Rate limits", ["rate_limit_anonymous_count", "rate_limit_anonymous_period",
                         "rate_limit_authenticated_count", "rate_limit_authenticated_period"]),
    ],
    pages=[
        ("General", ["Client address", "Response headers", "Rate limits"]),
        ("Security", ["Access control", "Strict transport security", "Cross-origin requests"]),
    ],
    page_descriptions={
        "General": "Where the client address is read from, the headers added to every response, and the "
                   "request rate limits.",
        "Security": "Which requests reach an endpoint at all, HSTS on TLS listeners, and cross-origin requests.",
    },
    labels={"use_permissive_cors": "Permissive CORS", "use_x_forwarded": "Use X-Forwarded headers"},
    composites=[
        RateChoice("rateLimitAnonymous", "rate_limit_anonymous_count", "rate_limit_anonymous_period"),
        RateChoice("rateLimitAuthenticated", "rate_limit_authenticated_count", "rate_limit_authenticated_period"),
    ],
    on_change=_dropped,
))

NETWORK_LISTENER = register(ObjectType(
    model=models.NetworkListener, name="NetworkListener", section="Settings › Network › Listeners",
    description="Addresses the server listens on. `make run` serves HTTP on every enabled HTTP listener.",
    groups=[("Listener", ["name", "protocol", "bind", "use_tls", "enabled"])],
    create_only=("name",),
    on_change=_dropped,
))

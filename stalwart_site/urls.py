"""The URL table, in the order of the reference's endpoint list as slices arrive."""
from django.contrib import admin
from django.urls import include, path, re_path

from accounts import views as account_views
from jmapapi import blob_views as jmap_blobs
from jmapapi import push_views as jmap_push
from jmapapi import views as jmap
from network.drf import OpenApiView
from oauth import api_views as oauth_api
from oauth import registration as oauth_registration
from oauth import views as oauth
from submission import live_views as submission_live

urlpatterns = [
    # JMAP
    path(".well-known/jmap", jmap.well_known),
    path("jmap", jmap.api),
    path("jmap/", jmap.api),
    path("jmap/session", jmap.session),
    path("jmap/eventsource/", jmap_push.eventsource),
    path("jmap/eventsource", jmap_push.eventsource),
    path("jmap/ws", jmap_push.websocket),
    path("jmap/ws/", jmap_push.websocket),
    path("jmap/upload/<str:account_id>/", jmap_blobs.upload),
    # The name may hold anything, control characters included (blob_views cleans it).
    re_path(r"^jmap/download/(?P<account_id>[^/]+)/(?P<blob_id>[^/]+)/(?P<name>[\s\S]+)$", jmap_blobs.download),
    # The reference's documentation posts JMAP to /api: accept it too.
    path("api", jmap.api),
    path("api/schema", jmap.schema),
    # Short-lived tokens for live streams a browser opens without an Authorization header.
    path("api/token/<str:kind>", jmap_push.token),
    # The delivery test, streamed (?token= from /api/token/delivery).
    path("api/live/delivery/<str:target>", submission_live.delivery),
    path("api/schema/<str:digest>", jmap.schema_document),
    # OpenAPI 3 description of the /api endpoints that run on DRF (docs/api.md).
    path("api/openapi.json", OpenApiView.as_view(), name="openapi"),
    # OAuth 2.0 and OpenID Connect
    path("auth/token", oauth.token),
    path("auth/device", oauth.device),
    path("auth/introspect", oauth.introspect),
    path("auth/userinfo", oauth.userinfo),
    path("auth/jwks.json", oauth.jwks),
    path("auth/register", oauth_registration.register),
    path("api/auth", oauth.api_auth),
    path("api/discover", oauth_api.discover),
    path("api/discover/", oauth_api.discover),
    path("api/discover/<path:email>", oauth_api.discover),
    path("api/account", oauth_api.account),
    path("login", oauth.login_page),
    path("device", oauth.device_page),
    path("device/", oauth.device_page),
    path(".well-known/oauth-authorization-server", oauth.oauth_metadata),
    path(".well-known/openid-configuration", oauth.openid_configuration),
    path(".well-known/oauth-protected-resource", oauth.protected_resource),
    # Client discovery, MTA-STS, health, robots (wellknown/urls.py); Prometheus (telemetry/urls.py)
    path("", include("certificates.urls")),  # /.well-known/acme-challenge/ before the well-known catch-all
    path("", include("wellknown.urls")),
    path("", include("contactform.urls")),
    path("", include("telemetry.urls")),
    # WebDAV: principals, the file store, calendar and contact homes (dav/urls.py)
    path("", include("dav.urls")),
    # The answer links of calendar invitations (rsvp/urls.py)
    path("", include("rsvp.urls")),
    # Web UI
    path("", account_views.home, name="home"),
    path("account/", include("accounts.urls")),
    path("admin/", admin.site.urls),
]

# A path no route answers: problem+json on machine paths, Django's page elsewhere.
handler404 = "network.views.not_found"

"""URLs of the wellknown app (included at the root, after the JMAP and OAuth well-knowns).

The last pattern catches every other /.well-known/ path (the CORS preflight, else 404): a
well-known resource of another app must be routed before this file is included.
"""
from django.urls import path, re_path

from . import views

_AUTODISCOVER = r"^(?:autodiscover|Autodiscover|AutoDiscover)/"

urlpatterns = [
    path("mail/config-v1.1.xml", views.autoconfig),
    re_path(_AUTODISCOVER + r"(?i:autodiscover\.xml)$", views.autodiscover_xml),
    re_path(_AUTODISCOVER + r"(?i:autodiscover\.json)(?:/(?P<rest>.*))?$", views.autodiscover_json),
    path("robots.txt", views.robots),
    path("healthz/live", views.live),
    path("healthz/ready", views.ready),
    path(".well-known/autoconfig/mail/config-v1.1.xml", views.autoconfig_well_known),
    path(".well-known/mail-v1.xml", views.mail_v1),
    path(".well-known/user-agent-configuration.json", views.user_agent_configuration),
    path(".well-known/mta-sts.txt", views.mta_sts),
    re_path(r"^\.well-known/caldav(?:/(?P<rest>.*))?$", views.caldav),
    re_path(r"^\.well-known/carddav(?:/(?P<rest>.*))?$", views.carddav),
    re_path(r"^\.well-known/(?P<rest>.*)$", views.well_known_other),
]

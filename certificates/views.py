"""The HTTP-01 responder: GET /.well-known/acme-challenge/<token> (spec discovery §9.2).

It answers the key authorization of a pending order with 200 text/plain, and 404 problem+json
otherwise. Like the reference, it answers only while some ACME provider uses HTTP-01, or while
there is no provider at all (so that the first order needs no reload).
"""
from django.http import HttpResponse

from network.endpoint import endpoint
from stalwart_site.problem import problem

from . import services
from .models import TOKEN

NOT_FOUND = "The requested resource does not exist on this server."


@endpoint("GET", options="cors")
def acme_challenge(request, token: str):
    if not TOKEN.match(token) or not services.http01_active():
        return problem(404, NOT_FOUND)
    key_authorization = services.published_key_authorization(token)
    if key_authorization is None:
        return problem(404, NOT_FOUND)
    return HttpResponse(key_authorization, content_type="text/plain")

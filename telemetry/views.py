"""/metrics/prometheus (reference §4.10); everything else under /metrics/ answers 404."""
from django.db.models import Q
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from accounts import login as account_login
from network.endpoint import CHALLENGES, NOT_FOUND, auth_problem, endpoint, not_found
from registry import context
from registry import services as registry
from security.models import BlockedIp
from stalwart_site.problem import problem

from . import metrics as telemetry_metrics
from .models import Metrics
from .services import authorized

class BlockedIpsCollector:
    """A gauge read from the database at scrape time: the same for every worker, so it needs
    no multiprocess mode."""

    def collect(self):
        now = timezone.now()
        count = BlockedIp.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).count()
        yield GaugeMetricFamily("stalwart_blocked_ips", "IP addresses and networks blocked now "
                                "(bans and manual blocks that have not expired).", value=count)


@endpoint("GET", "HEAD")
def prometheus(request):
    # The state the edge read for this request (Metrics is a settings singleton), not a query.
    state = context.states("Metrics")["Metrics"]
    settings = registry.current(Metrics, {"Metrics": state})
    if not settings.prometheus_enabled:
        return problem(404, NOT_FOUND)
    if not authorized(settings, request.META.get("HTTP_AUTHORIZATION"), state):
        if request.META.get("HTTP_AUTHORIZATION"):
            # Wrong scraper credentials are a failed authentication like any other.
            verdict = account_login.count_failure(account_login.AuthFailed(), request.META.get("REMOTE_ADDR"))
            if isinstance(verdict, account_login.Banned):
                return auth_problem(verdict)
        response = problem(401, "You have to authenticate first.")
        # The reference's two challenges (JMAP's 401), one header.
        response["WWW-Authenticate"] = CHALLENGES
        return response
    body = telemetry_metrics.exposition(BlockedIpsCollector())
    response = HttpResponse(b"" if request.method == "HEAD" else body, content_type=telemetry_metrics.CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    if request.method == "HEAD":
        response["Content-Length"] = str(len(body))
    return response


# /metrics/otel is reserved by the reference, and nothing else lives under /metrics.
unknown = not_found()

"""The admin's home page: counts from the tables and the service's own Prometheus counters,
drawn as bar charts in SVG built here (no chart library, no script, nothing from a CDN)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from accounts.models import Account, Domain
from certificates.models import Certificate
from registry import declaration as decl_mod
from registry import services
from security.models import BlockedIp
from telemetry import metrics
from telemetry.models import Metrics

# Certificates that end within this many days are marked.
EXPIRY_WARNING_DAYS = 21
BAR_HEIGHT, BAR_GAP, LABEL_WIDTH, CHART_WIDTH = 18, 6, 190, 620


@dataclass
class Bar:
    label: str
    value: float
    css: str = "bar"


def bar_chart(title: str, bars: list[Bar]) -> str:
    """A horizontal bar chart as inline SVG, with an accessible title and the values as text."""
    if not bars or not any(b.value for b in bars):
        return format_html('<p class="empty">No data yet for {}.</p>', title.lower())
    top = max(b.value for b in bars) or 1
    room = CHART_WIDTH - LABEL_WIDTH - 70
    height = len(bars) * (BAR_HEIGHT + BAR_GAP)
    rows = []
    for i, bar in enumerate(bars):
        y = i * (BAR_HEIGHT + BAR_GAP)
        width = max(1, round(room * bar.value / top)) if bar.value else 0
        rows.append((
            y + BAR_HEIGHT - 5, LABEL_WIDTH - 8, bar.label[:32],
            LABEL_WIDTH, y, width, BAR_HEIGHT, bar.css,
            LABEL_WIDTH + width + 6, y + BAR_HEIGHT - 5, f"{bar.value:g}",
        ))
    body = format_html_join(
        "", '<text y="{}" x="{}" text-anchor="end">{}</text><rect x="{}" y="{}" width="{}" height="{}" rx="3" '
        'class="{}"></rect><text x="{}" y="{}">{}</text>', rows)
    return format_html('<svg viewBox="0 0 {} {}" role="img" aria-label="{}"><title>{}</title>{}</svg>',
                       CHART_WIDTH, height, title, title, body)


def _metric_samples() -> dict[str, list]:
    """Samples of this server's counters, all workers' under gunicorn, by metric family name."""
    if metrics.multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    families = {}
    for family in registry.collect():
        if family.name.startswith("stalwart_"):
            families[family.name] = [s for s in family.samples if s.name.endswith("_total")]
    return families


def _sum_by(samples, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in samples:
        key = s.labels.get(label, "")
        out[key] = out.get(key, 0) + s.value
    return out


def _visible(model, user):
    """The rows of `model` the user may read (its permission, its tenant), or None."""
    decl = decl_mod.for_model(model)
    has = getattr(user, "has_stalwart_perm", None)
    if decl is None or has is None or not has(decl.perm("Get")):
        return None
    return services.scope(decl, user, model.objects.all())


def context(user) -> dict:
    """What `user` may see: each figure needs the permission that reads its source, and a
    tenant's administrator sees the counts of the tenant only and no server-wide counters."""
    now = timezone.now()
    cards, charts = [], []
    accounts = _visible(Account, user)
    if accounts is not None:
        kinds = dict(accounts.order_by().values_list("kind").annotate(n=Count("pk")))
        cards += [("Users", kinds.get(Account.Kind.USER, 0)), ("Groups", kinds.get(Account.Kind.GROUP, 0))]
    domains = _visible(Domain, user)
    if domains is not None:
        cards.append(("Domains", domains.count()))

    metrics_readable = _visible(Metrics, user) is not None and services.actor_tenant(user) is None
    if metrics_readable:
        families = _metric_samples()
        logins = _sum_by(families.get("stalwart_logins", []), "result")
        requests = _sum_by(families.get("stalwart_http_requests", []), "endpoint")
        cards += [("Sign-ins", int(logins.get("success", 0))),
                  ("Failed sign-ins", int(sum(v for k, v in logins.items() if k != "success")))]
        charts += [
            ("Sign-ins and failures (since the server started)", bar_chart("Sign-ins by outcome", [
                Bar(name.replace("_", " "), value, "bar-ok" if name == "success" else "bar-bad")
                for name, value in sorted(logins.items(), key=lambda kv: -kv[1]) if value])),
            ("Requests by endpoint (since the server started)", bar_chart("Requests by endpoint", [
                Bar(name or "-", value) for name, value in sorted(requests.items(), key=lambda kv: -kv[1])[:12]])),
        ]

    bans = _visible(BlockedIp, user)
    if bans is not None:
        active = bans.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        by_reason = dict(active.order_by().values_list("reason").annotate(n=Count("pk")))
        labels = dict(BlockedIp.Reason.choices)
        cards.append(("Banned addresses", sum(by_reason.values())))
        charts.append(("Banned addresses by reason", bar_chart("Banned addresses by reason", [
            Bar(str(labels.get(r, r)), n, "bar-bad") for r, n in sorted(by_reason.items())])))

    certificates = []
    certs = _visible(Certificate, user)
    if certs is not None:
        for cert in certs.order_by("not_after")[:8]:
            days = (cert.not_after - now) / timedelta(days=1)
            certificates.append({"cert": cert, "days": int(days), "soon": days < EXPIRY_WARNING_DAYS})
        charts.append(("Days until certificates expire", bar_chart("Days until certificates expire", [
            Bar(", ".join(c["cert"].names[:1]) or "-", max(c["days"], 0), "bar-bad" if c["soon"] else "bar-ok")
            for c in certificates])))

    # The live chart and log (static/stalwart/live.js) show the whole server: not to a tenant's
    # administrator, whatever their role says.
    server_wide = services.actor_tenant(user) is None
    has = getattr(user, "has_stalwart_perm", None)
    live_metrics = bool(has and server_wide and has("liveMetrics"))
    live_tracing = bool(has and server_wide and has("liveTracing"))
    return {"cards": cards, "charts": charts, "certificates": certificates,
            "expiry_warning_days": EXPIRY_WARNING_DAYS, "live_metrics": live_metrics, "live_tracing": live_tracing}

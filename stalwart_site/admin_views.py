"""Small JSON endpoints behind the admin pages' widgets, and the pages that are no settings object."""
from __future__ import annotations

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from network import live_token
from network.expr import MAX_SOURCE_LENGTH, ExprError, compile_expression
from submission import deliverytest


def rule_check(request):
    """GET ?field=app.model.field&expr=…: whether `expr` compiles as one expression of that rule
    field (with its variables), and where the first error is: {"ok": false, "error", "position"}.
    The rule editor calls it as one types; the form's own validation stays the authority."""
    path, source = request.GET.get("field", ""), request.GET.get("expr")
    if source is not None and len(source) > MAX_SOURCE_LENGTH:
        # Refused before anything is parsed: the check costs the same whatever was sent.
        return JsonResponse({"ok": False, "error": f"The expression is longer than {MAX_SOURCE_LENGTH} characters.",
                             "position": MAX_SOURCE_LENGTH}, status=400)
    variables = None
    parts = path.rsplit(".", 1)
    if len(parts) == 2 and source is not None:
        try:
            model = apps.get_model(parts[0])
            field = model._meta.get_field(parts[1])
        except (LookupError, ValueError, FieldDoesNotExist):
            field = None
        variables = getattr(field, "variables", None)
    if variables is None:
        return JsonResponse({"ok": False, "error": "Give field=<app>.<model>.<rule field> and expr=<expression>."},
                            status=400)
    try:
        compile_expression(source, variables)
    except ExprError as exc:
        # A limit (too deep) is a 400 the editor shows like any other error.
        return JsonResponse({"ok": False, "error": exc.message, "position": exc.position},
                            status=400 if exc.limit else 200)
    return JsonResponse({"ok": True})


# --- Test delivery: the page, and the token its script opens the stream with -----------------
DELIVERY_PERMISSION = live_token.KINDS["delivery"].permission


def can_test_delivery(user) -> bool:
    return user.is_staff and user.has_stalwart_perm(DELIVERY_PERMISSION)


def delivery_test(request, site):
    """Management › Test delivery: a form with the target; the stages appear as the stream
    (/api/live/delivery/<target>?token=…) sends them (static/stalwart/delivery-test.js)."""
    if not can_test_delivery(request.user):
        raise PermissionDenied
    context = {**site.each_context(request), "title": "Test delivery",
               "token_url": reverse("admin:delivery-test-token")}
    return TemplateResponse(request, "admin/delivery_test.html", context)


@require_POST
def delivery_test_token(request):
    """A token for one delivery test stream, to a page of this session (CSRF-checked POST: another
    site cannot have a browser mint one). It is good for EVENTSOURCE_TOKEN_TTL seconds, as every live token."""
    if not can_test_delivery(request.user):
        return JsonResponse({"error": f"You do not have the {DELIVERY_PERMISSION} permission."}, status=403)
    try:
        deliverytest.parse_target(request.POST.get("target", ""))
    except deliverytest.TargetError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    # Never cached: admin_view marks every admin answer no-store.
    return JsonResponse({"token": live_token.mint(live_token.KINDS["delivery"], request.user.pk)})

"""Small JSON endpoints behind the admin pages' widgets."""
from __future__ import annotations

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.http import JsonResponse

from network.expr import MAX_SOURCE_LENGTH, ExprError, compile_expression


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

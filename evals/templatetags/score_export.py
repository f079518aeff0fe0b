"""The Settings page's section on the export of the project's scores (evals.export_settings), as a tag so that the
Settings view itself needs no change: ``{% load score_export %}{% score_export_panel %}``. Admins only."""

from typing import Any

from django import template

from evals.export_settings import panel_context

register = template.Library()


@register.inclusion_tag("evals/_score_export.html", takes_context=True)
def score_export_panel(context: template.Context) -> dict[str, Any]:
    if not context.get("is_admin"):
        return {"show": False}
    return {**panel_context(project=context["project"]), "show": True, "csrf_token": context.get("csrf_token")}

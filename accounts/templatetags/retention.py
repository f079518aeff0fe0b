"""The Settings page's data retention section, as a tag so the Settings view needs no change:
``{% load retention %}{% retention_panel %}``. Every member sees the settings; admins change them and see what was
removed."""

from typing import Any

from django import template

from accounts.views import retention_panel_context

register = template.Library()


@register.inclusion_tag("accounts/_retention.html", takes_context=True)
def retention_panel(context: template.Context) -> dict[str, Any]:
    panel = retention_panel_context(project=context["project"], is_admin=bool(context.get("is_admin")))
    return {**panel, "csrf_token": context.get("csrf_token")}

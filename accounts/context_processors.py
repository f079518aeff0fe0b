from typing import Any

from django.http import HttpRequest

from accounts.selectors import projects_for_user


def projects(request: HttpRequest) -> dict[str, Any]:
    """The project switcher in the header lists only the user's own projects."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"user_projects": projects_for_user(user=request.user)}

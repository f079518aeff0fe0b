"""Reads for projects, members and keys; every project read is scoped to the user's memberships."""

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import ApiKey, Membership, Project
from accounts.services import hash_secret


def projects_for_user(*, user: User | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).order_by("slug")


def membership_for(*, user: User | AnonymousUser, slug: str) -> Membership:
    """The user's membership in the project, or 404 (a non-member cannot tell the project exists)."""
    if not user.is_authenticated:
        raise Http404("No such project.")
    membership = Membership.objects.select_related("project").filter(user=user, project__slug=slug).first()
    if membership is None:
        raise Http404("No such project.")
    return membership


def api_key_by_secret(*, secret: str) -> ApiKey | None:
    return ApiKey.objects.select_related("project").filter(secret_hash=hash_secret(secret)).first()


def api_keys_for_project(*, project: Project) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(project=project).select_related("created_by")


def members_of(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")

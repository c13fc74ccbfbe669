"""Closes an organization's pages to a member who has no second factor while it requires one, and
every page to a superuser without one when the settings require it; each gets a page saying how
to set one up."""

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.shortcuts import render
from django.urls import Resolver404, resolve

from accounts import selectors
from accounts.adapters import PROVIDER_TWO_FACTOR_SESSION_KEY

# Setting up the factor itself, preferences, signing out (everywhere too), sessions, accepting
# invitations and static files stay reachable.
OPEN_PATHS = ("/accounts/", "/invitations/", "/static/", "/preferences/", "/admin/logout/", "/sessions/")


def _page_organization_id(request, locked) -> int | None:
    """The organization whose page the request asks for, when it is one of ``locked``: a dashboard
    under /orgs/<id>/, or an admin page of one of its objects (its change page, credentials,
    revocation...). Lists are already filtered by ``selectors.organizations_of``."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    if match.namespace == "dashboards" and "org_id" in match.kwargs:
        return next((o.pk for o in locked if o.public_id == match.kwargs["org_id"]), None)
    if match.app_name != "admin" or "object_id" not in match.kwargs or not match.url_name:
        return None
    for model in apps.get_models():
        if not admin.site.is_registered(model):
            continue
        # Django names an admin's pages, and ours name theirs, "<app label>_<model name>_<page>".
        if match.url_name.startswith(f"{model._meta.app_label}_{model._meta.model_name}_"):
            path = getattr(admin.site.get_model_admin(model), "organization_path", None)
            if path is None:
                return None
            organization_id = selectors.organization_id_of(model=model, object_id=match.kwargs["object_id"], path=path)
            return organization_id if organization_id in {o.pk for o in locked} else None
    return None


def _needed(request, *, organizations, superuser: bool = False):
    return render(
        request,
        "accounts/two_factor_needed.html",
        {
            "organizations": organizations,
            "superuser": superuser,
            "others": [] if superuser else list(selectors.organizations_of(user=request.user).order_by("name")),
            "security_keys": "webauthn" in settings.MFA_SUPPORTED_TYPES,
        },
        status=403,
    )


def two_factor_required(get_response):
    def middleware(request):
        user = request.user
        if not user.is_authenticated or request.path.startswith(OPEN_PATHS):
            return get_response(request)
        session_two_factor = bool(request.session.get(PROVIDER_TWO_FACTOR_SESSION_KEY))
        if user.is_superuser:
            if (
                settings.SECURITY_SUPERUSERS_REQUIRE_TWO_FACTOR
                and not session_two_factor
                and not selectors.two_factor_enabled(user=user)
            ):
                return _needed(request, organizations=[], superuser=True)
            return get_response(request)
        locked = selectors.two_factor_locked_organizations(user=user, session_two_factor=session_two_factor)
        # Read by selectors.organizations_of and role_in for the rest of the request, and by the pages' banner.
        user.two_factor_locked_ids = {organization.pk for organization in locked}
        request.two_factor_locked = locked
        if locked:
            organization_id = _page_organization_id(request, locked)
            if organization_id is not None:
                return _needed(request, organizations=[o for o in locked if o.pk == organization_id])
            if not user.memberships.exclude(organization__in=locked).exists():
                # Every organization of theirs is closed: no page of the admin or dashboards is left.
                return _needed(request, organizations=locked)
        return get_response(request)

    return middleware

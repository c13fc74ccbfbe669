"""Accounts' pages outside the admin: accepting an invitation, signing out everywhere."""

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import selectors, services
from accounts.forms import InvitedAccountForm
from accounts.models import User
from accounts.services import Source


def _unusable(request):
    # One answer whether the link was used, revoked, expired or never existed.
    return render(request, "accounts/invitation_unusable.html", status=404)


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request, token: str):
    invitation = selectors.invitation_by_token(token=token)
    if invitation is None:
        return _unusable(request)
    signed_in = request.user.is_authenticated
    form = None if signed_in else InvitedAccountForm(request.POST or None, instance=User(email=invitation.email))
    if request.method == "POST" and (signed_in or form.is_valid()):
        try:
            membership = services.invitation_accept(
                token=token,
                user=request.user if signed_in else None,
                username="" if signed_in else form.cleaned_data["username"],
                password="" if signed_in else form.cleaned_data["password1"],
                source=Source.from_request(request),
            )
        except services.InvitationUnusable:
            return _unusable(request)
        target = reverse("dashboards:organization", args=[membership.organization.public_id])
        messages.success(request, f"You are now a member of {membership.organization.name}.")
        if signed_in:
            return redirect(target)
        from allauth.account.utils import perform_login

        membership.user.backend = "django.contrib.auth.backends.ModelBackend"
        return perform_login(request, membership.user, redirect_url=target)
    return render(
        request,
        "accounts/invitation.html",
        {"invitation": invitation, "form": form, "sign_in_url": reverse("account_login") + "?next=" + request.path},
    )


@login_required
@require_http_methods(["POST"])
def sign_out_everywhere(request):
    services.sessions_end(user=request.user, by=request.user, source=Source.from_request(request))
    logout(request)
    return redirect("admin:login")

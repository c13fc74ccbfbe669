"""Sends a person who must use two-factor, and has none yet, to set it up before anything else."""

from django.contrib import messages
from django.shortcuts import redirect

from accounts import selectors
from accounts.adapters import PROVIDER_TWO_FACTOR_SESSION_KEY

# Setting up the factor itself, signing out, sessions, accepting invitations and static files stay reachable.
OPEN_PATHS = ("/accounts/", "/invitations/", "/static/")


def two_factor_required(get_response):
    def middleware(request):
        user = request.user
        if (
            user.is_authenticated
            and not request.path.startswith(OPEN_PATHS)
            and selectors.two_factor_required(user=user)
            and not selectors.two_factor_enabled(user=user)
            and not request.session.get(PROVIDER_TWO_FACTOR_SESSION_KEY)
        ):
            messages.warning(
                request,
                "Two-factor authentication is required of your account: set up an authenticator app to continue.",
            )
            return redirect("mfa_activate_totp")
        return get_response(request)

    return middleware

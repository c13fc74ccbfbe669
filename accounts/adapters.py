"""How django-allauth fits this service: no open sign-up but through single sign-on, the names and
addresses it signs in with, and who the provider may sign in."""

import time

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.usersessions.adapter import DefaultUserSessionsAdapter
from django.conf import settings
from django.shortcuts import render

from telemetry.lib.addresses import client_address


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        # People join an organization by invitation (accounts.views.invitation_accept), never on their own.
        return False

    def is_reauthentication_required(self, *, app: str, **kwargs) -> bool:
        # A person made by single sign-on has no password to confirm again, so allauth could never
        # let them set up two-factor: their sign-in through the provider, if recent, stands in for it.
        from allauth.account import app_settings
        from allauth.account.internal.flows.login import get_authentication_records
        from allauth.core import context

        request = context.request
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not user.has_usable_password():
            recent = [
                record
                for record in get_authentication_records(request, user)
                if record.get("method") == "socialaccount"
                and time.time() - record["at"] < app_settings.REAUTHENTICATION_TIMEOUT
            ]
            if recent:
                return False
        return super().is_reauthentication_required(app=app, **kwargs)

    def pre_login(self, request, user, **kwargs):
        # A passkey stands in for the password, so it goes where a password may: with single sign-on
        # on and passwords off, people sign in through the provider (whose offboarding then holds).
        from allauth.mfa.webauthn.internal.flows import did_use_passwordless_login

        if did_use_passwordless_login(request, user) and not password_sign_in_allowed(user):
            from allauth.account.internal.flows.login import clear_authentication_records
            from allauth.account.internal.stagekit import clear_login
            from django.contrib import messages
            from django.shortcuts import redirect

            clear_login(request)
            clear_authentication_records(request)
            messages.error(request, "Sign in with single sign-on: passkeys, like passwords, are turned off here.")
            return redirect("account_login")
        return super().pre_login(request, user, **kwargs)

    def get_client_ip(self, request):
        # The same address as the audit log and django-axes see (APP_SERVER__TRUSTED_PROXIES).
        return client_address(request) or request.META.get("REMOTE_ADDR", "")


def sign_in_name(request, credentials) -> str:
    """The account a sign-in attempt names, for django-axes: the admin's form sends a username,
    allauth's a username or an e-mail address."""
    credentials = credentials or {}
    name = credentials.get("username") or credentials.get("email")
    if not name and request is not None:
        name = request.POST.get("login") or request.POST.get("username")
    return str(name or "")[:150]


def sign_on_claims(sociallogin) -> dict:
    """The provider's claims about the person: its userinfo answer, else the ID token's."""
    data = sociallogin.account.extra_data or {}
    return data.get("userinfo") or data.get("id_token") or data


# The session of a person whose provider said they signed in with two factors (accounts.receivers).
PROVIDER_TWO_FACTOR_SESSION_KEY = "accounts.provider_two_factor"
# RFC 8176 methods by factor: a possession method counts as two-factor only beside a method of
# another kind (a one-time code alone, or two keys, is one factor).
POSSESSION_METHODS = {"otp", "hwk", "swk", "sc"}
OTHER_FACTOR_METHODS = {"pwd", "pin", "kba", "fpt", "face", "iris", "retina", "vbm"}


def sign_on_methods(sociallogin) -> dict:
    """How the provider says the person signed in: the ID token's ``amr`` (a list) and ``acr``. Both
    are ID-token claims; userinfo is not asked."""
    id_token = (sociallogin.account.extra_data or {}).get("id_token") or {}
    amr, acr = id_token.get("amr"), id_token.get("acr")
    return {
        "amr": [str(method) for method in amr] if isinstance(amr, list) else [],
        "acr": acr if isinstance(acr, str) else "",
    }


def provider_two_factor(sociallogin) -> bool:
    """Whether the provider says the person signed in with two factors: ``amr`` holds "mfa", or a
    possession method beside a knowledge or biometric one, or ``acr`` is a value the operator
    listed (APP_SSO__TWO_FACTOR_ACR)."""
    signed_in = sign_on_methods(sociallogin)
    methods = set(signed_in["amr"])
    if "mfa" in methods or (methods & POSSESSION_METHODS and methods & OTHER_FACTOR_METHODS):
        return True
    return bool(signed_in["acr"]) and signed_in["acr"] in settings.SSO_TWO_FACTOR_ACR


class SingleSignOnAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        # The provider vouched for the person: an account is made for them on their first sign-in.
        return True

    def pre_social_login(self, request, sociallogin):
        from accounts.models import AuditEntry
        from accounts.services import Source, audit_record

        email = str(sign_on_claims(sociallogin).get("email") or "")
        domain = email.rpartition("@")[2].lower()
        if settings.SSO_ALLOWED_DOMAINS and domain not in settings.SSO_ALLOWED_DOMAINS:
            audit_record(
                action=AuditEntry.Action.SIGN_IN_FAILED,
                target=email[:150],
                source=Source.from_request(request),
                details={"single_sign_on": "domain not allowed"},
            )
            raise ImmediateHttpResponse(render(request, "accounts/sso_refused.html", {"email": email}, status=403))


def password_sign_in_allowed(user) -> bool:
    """With single sign-on on and passwords turned off, only superusers still sign in with one."""
    return not (settings.SSO_ISSUER and not settings.SSO_PASSWORD_SIGN_IN) or user.is_superuser


class UserSessionsAdapter(DefaultUserSessionsAdapter):
    def end_sessions(self, sessions) -> None:
        # allauth ends sessions from the person's session list through here: each goes in the audit log.
        from allauth.core import context

        from accounts.services import COMMAND_LINE, Source, user_sessions_end

        request = context.request
        user_sessions_end(
            sessions=list(sessions),
            by=request.user if request is not None and request.user.is_authenticated else None,
            source=Source.from_request(request) if request is not None else COMMAND_LINE,
        )

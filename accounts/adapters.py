"""How django-allauth fits this service: no open sign-up, and the names it signs in with."""

from allauth.account.adapter import DefaultAccountAdapter

from telemetry.lib.addresses import client_address


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        # People join an organization by invitation (accounts.views.invitation_accept), never on their own.
        return False

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

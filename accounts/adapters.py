"""How django-allauth fits this service: no open sign-up, and the names it signs in with."""

from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        # People join an organization by invitation (accounts.views.invitation_accept), never on their own.
        return False


def sign_in_name(request, credentials) -> str:
    """The account a sign-in attempt names, for django-axes: the admin's form sends a username,
    allauth's a username or an e-mail address."""
    credentials = credentials or {}
    name = credentials.get("username") or credentials.get("email")
    if not name and request is not None:
        name = request.POST.get("login") or request.POST.get("username")
    return str(name or "")[:150]

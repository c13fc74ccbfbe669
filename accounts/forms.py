from allauth.account.forms import LoginForm
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError

from accounts.adapters import password_sign_in_allowed
from accounts.models import User


class InvitedAccountForm(UserCreationForm):
    """The account an invited person makes: a username and a password; the address is the invited one."""

    class Meta:
        model = User
        fields = ["username"]


class PasswordLoginForm(LoginForm):
    """allauth's sign-in form, refusing passwords when single sign-on has turned them off."""

    def clean(self):
        cleaned = super().clean()
        if self.user is not None and not password_sign_in_allowed(self.user):
            raise ValidationError("Sign in with single sign-on: passwords are turned off here.")
        return cleaned

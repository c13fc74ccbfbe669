from django.contrib.auth.forms import UserCreationForm

from accounts.models import User


class InvitedAccountForm(UserCreationForm):
    """The account an invited person makes: a username and a password; the address is the invited one."""

    class Meta:
        model = User
        fields = ["username"]

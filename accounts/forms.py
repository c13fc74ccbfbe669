from allauth.account.forms import LoginForm
from allauth.core import context
from allauth.mfa import signals
from allauth.mfa.models import Authenticator
from allauth.mfa.webauthn.forms import (
    AddWebAuthnForm,
    AuthenticateWebAuthnForm,
    LoginWebAuthnForm,
    ReauthenticateWebAuthnForm,
)
from allauth.mfa.webauthn.internal.auth import parse_authentication_response, parse_registration_response
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


def _readable_key_answer(credential, parse):
    """The browser's WebAuthn answer, once allauth's ``parse`` reads it: for some malformed answers
    fido2 raises what allauth (pinned) does not catch, an error page, instead of a refusal."""
    try:
        if not isinstance(credential, dict):
            raise TypeError(type(credential).__name__)
        parse(credential)
    except (KeyError, TypeError, ValueError):
        message = "The security key's answer could not be read. Try again."
        raise ValidationError(message, code="incorrect_code") from None
    return credential


class AddSecurityKeyForm(AddWebAuthnForm):
    def clean_credential(self):
        return _readable_key_answer(self.cleaned_data["credential"], parse_registration_response)


class _ReadableKeyAnswer:
    def clean_credential(self):
        try:
            _readable_key_answer(self.cleaned_data["credential"], parse_authentication_response)
            return super().clean_credential()
        except ValidationError:
            # allauth signals a wrong code but not a refused key: the audit log hears of both. A
            # passkey sign-in knows whose key it was only once the key is accepted.
            if self.user is not None:
                signals.authentication_failed.send(
                    sender=Authenticator,
                    request=context.request,
                    user=self.user,
                    authenticator=Authenticator(user=self.user, type=Authenticator.Type.WEBAUTHN),
                    reauthentication=self.reauthenticated,
                )
            raise


class SecurityKeyForm(_ReadableKeyAnswer, AuthenticateWebAuthnForm):
    """The second factor at sign-in, by security key."""


class PasskeySignInForm(_ReadableKeyAnswer, LoginWebAuthnForm):
    """Sign-in by passkey alone."""


class SecurityKeyReauthenticationForm(_ReadableKeyAnswer, ReauthenticateWebAuthnForm):
    """Confirming it is still the person, by security key, before a change to their factors."""

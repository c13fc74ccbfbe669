"""Sign-in and second-factor signals, Django's and allauth's, recorded in the audit log."""

from accounts.adapters import (
    PROVIDER_TWO_FACTOR_SESSION_KEY,
    provider_two_factor,
    sign_in_name,
    sign_on_claims,
    sign_on_methods,
)
from accounts.models import AuditEntry
from accounts.services import COMMAND_LINE, Source, audit_record, sign_on_memberships_apply


def _source(request) -> Source:
    return Source.from_request(request) if request is not None else COMMAND_LINE


def signed_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        # Only a sign-in through the provider says so again (signed_on, sent after this one).
        request.session.pop(PROVIDER_TWO_FACTOR_SESSION_KEY, None)
    audit_record(action=AuditEntry.Action.SIGN_IN, actor=user, target=user.get_username(), source=_source(request))


def sign_in_failed(sender, credentials, request=None, **kwargs):
    audit_record(
        action=AuditEntry.Action.SIGN_IN_FAILED, target=sign_in_name(None, credentials), source=_source(request)
    )


def _second_factor(action):
    def receiver(sender, request, user, authenticator, **kwargs):
        audit_record(
            action=action,
            actor=user,
            target=user.get_username(),
            source=_source(request),
            details={"type": authenticator.type},
        )

    return receiver


second_factor_added = _second_factor(AuditEntry.Action.SECOND_FACTOR_ADDED)
second_factor_removed = _second_factor(AuditEntry.Action.SECOND_FACTOR_REMOVED)
recovery_codes_renewed = _second_factor(AuditEntry.Action.RECOVERY_CODES_RENEWED)
second_factor_failed = _second_factor(AuditEntry.Action.SECOND_FACTOR_FAILED)


def signed_on(sender, request, user, sociallogin=None, **kwargs):
    """allauth's sign-in signal: after single sign-on, whether the provider's two factors count for
    this session, and the organizations the rules place the person in."""
    if sociallogin is None:
        return
    if provider_two_factor(sociallogin):
        request.session[PROVIDER_TWO_FACTOR_SESSION_KEY] = True
        # The audit log says which sessions passed the two-factor rules on the provider's word.
        audit_record(
            action=AuditEntry.Action.PROVIDER_TWO_FACTOR,
            actor=user,
            target=user.get_username(),
            source=_source(request),
            details=sign_on_methods(sociallogin),
        )
    claims = sign_on_claims(sociallogin)
    groups = claims.get("groups") or []
    sign_on_memberships_apply(
        user=user,
        email=str(claims.get("email") or ""),
        groups=[str(group) for group in groups] if isinstance(groups, list) else [],
        source=_source(request),
    )

"""The admin site, entered by membership rather than by Django's staff flag."""

from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from accounts import selectors


class MemberAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the correct username and password of a member of an organization. "
                         "Both fields may be case-sensitive.",
    }

    def confirm_login_allowed(self, user):
        if not user.is_active or not selectors.admin_access(user=user):
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login")


class MemberAdminSite(AdminSite):
    """Superusers and members of an organization enter; each page then checks their role. A membership
    alone grants the way in, so adding someone to an organization gives their account nothing more
    (a staff flag set for it would outlast the membership)."""

    login_form = MemberAuthenticationForm

    def has_permission(self, request):
        return request.user.is_active and selectors.admin_access(user=request.user)

"""The admin site, entered by membership rather than by Django's staff flag."""

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse

from accounts import selectors
from accounts.adapters import password_sign_in_allowed


class MemberAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the correct username and password of a member of an organization. "
        "Both fields may be case-sensitive.",
        "password_off": "Sign in with single sign-on: passwords are turned off here.",
    }

    def confirm_login_allowed(self, user):
        if not user.is_active or not selectors.admin_access(user=user):
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login")
        if not password_sign_in_allowed(user):
            raise ValidationError(self.error_messages["password_off"], code="password_off")


class StagedLoginView(LoginView):
    """Django's sign-in form, whose right password leads on to allauth's stages (the second factor,
    when the account has one) instead of straight into a session."""

    def form_valid(self, form):
        # allauth's internal entry (pinned version): it also records the password as this session's
        # first factor, which allauth asks for before changes such as setting up two-factor.
        from allauth.account.internal.flows.login import perform_password_login
        from allauth.account.models import Login

        login = Login(user=form.get_user(), redirect_url=self.get_success_url())
        return perform_password_login(self.request, {"username": form.cleaned_data["username"]}, login)


class MemberAdminSite(AdminSite):
    """Superusers and members of an organization enter; each page then checks their role. A membership
    alone grants the way in, so adding someone to an organization gives their account nothing more
    (a staff flag set for it would outlast the membership)."""

    login_form = MemberAuthenticationForm

    def has_permission(self, request):
        return request.user.is_active and selectors.admin_access(user=request.user)

    def login(self, request, extra_context=None):
        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        context = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
            "sso_label": settings.SSO_LABEL if settings.SSO_ISSUER else "",
            "passkey_sign_in": settings.MFA_PASSKEY_LOGIN_ENABLED,
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        context.update(extra_context or {})
        request.current_app = self.name
        return StagedLoginView.as_view(
            extra_context=context, authentication_form=self.login_form, template_name="admin/login.html"
        )(request)

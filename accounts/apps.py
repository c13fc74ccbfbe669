from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from allauth.account import signals as account
        from allauth.mfa import signals as mfa
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from accounts import receivers

        for name, signal in [
            ("signed_in", user_logged_in),
            ("sign_in_failed", user_login_failed),
            ("second_factor_added", mfa.authenticator_added),
            ("second_factor_removed", mfa.authenticator_removed),
            ("recovery_codes_renewed", mfa.authenticator_reset),
            ("second_factor_failed", mfa.authentication_failed),
            ("signed_on", account.user_logged_in),
        ]:
            signal.connect(getattr(receivers, name), dispatch_uid=f"accounts.audit.{name}")

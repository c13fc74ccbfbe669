from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from accounts import receivers

        user_logged_in.connect(receivers.signed_in, dispatch_uid="accounts.audit.signed_in")
        user_login_failed.connect(receivers.sign_in_failed, dispatch_uid="accounts.audit.sign_in_failed")

"""Django's admin app with the members' site (accounts.sites), kept apart from the models: an app's
configuration is imported before any model can be."""

from django.contrib.admin.apps import AdminConfig


class MemberAdminConfig(AdminConfig):
    default_site = "accounts.sites.MemberAdminSite"

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Application, Credential, Organization, Tier, User

admin.site.register(User, UserAdmin)


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "monthly_event_quota", "requests_per_minute", "retention_days", "is_unlimited"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "tier", "created_at"]
    search_fields = ["name", "public_id"]
    list_filter = ["tier"]


class CredentialInline(admin.TabularInline):
    model = Credential
    fields = ["token_prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "organization", "created_at"]
    search_fields = ["name", "public_id", "organization__name"]
    list_select_related = ["organization"]
    inlines = [CredentialInline]

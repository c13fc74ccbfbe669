"""The operators' admin: every object scoped to the organizations the user belongs to.

Superusers see everything. Owners and admins manage their organizations' applications and
credentials (owners also members and the organization itself); viewers only look. Anything of
another organization answers 404. Writes go through ``accounts.services`` so each is audited.
"""

from collections import Counter
from datetime import timedelta

from allauth.usersessions.models import UserSession
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts import selectors, services, snippets
from accounts.models import (
    Application,
    AuditEntry,
    Credential,
    Invitation,
    Membership,
    Organization,
    ReadToken,
    SignOnRule,
    Tier,
    User,
)
from accounts.services import Source

admin.site.site_header = "Telemetry"
admin.site.site_title = "Telemetry"
admin.site.index_title = "Operations"
admin.site.site_url = "/"
admin.site.enable_nav_sidebar = False


@admin.register(User)
class OperatorAdmin(UserAdmin):
    """Django's user admin (superusers only), with signing a person out of every session."""

    actions = ["sign_out_everywhere"]

    @admin.action(description="Sign the selected users out everywhere")
    def sign_out_everywhere(self, request, queryset):
        ended = sum(
            services.sessions_end(user=user, by=request.user, source=Source.from_request(request)) for user in queryset
        )
        self.message_user(request, f"{ended} session{'s' if ended != 1 else ''} ended.", messages.SUCCESS)


# Roles come from memberships; Django's groups would be a second, unused way to grant access.
admin.site.unregister(Group)


def form_changes(form) -> dict:
    """The fields a form changed, each with its value before, as the services' ``changes`` expect."""
    return {name: form.initial.get(name) for name in form.changed_data}


class RecordAdmin(admin.ModelAdmin):
    """A record the service writes (audit entries, archives, export runs, deliveries): shown, never
    added, changed or deleted by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.unregister(UserSession)


@admin.register(UserSession)
class SignedInSessionAdmin(RecordAdmin):
    """Where each person is signed in (superusers only: members hold no permission on it). A session
    is ended by the action, which signs its browser out and is audited; deleting the row alone would
    leave the browser signed in."""

    list_display = ["user", "created_at", "ip", "user_agent"]
    list_select_related = ["user"]
    search_fields = ["user__username", "ip"]
    actions = ["sign_out"]

    @admin.action(description="Sign the selected sessions out")
    def sign_out(self, request, queryset):
        ended = services.user_sessions_end(
            sessions=list(queryset), by=request.user, source=Source.from_request(request)
        )
        self.message_user(request, f"{ended} session{'s' if ended != 1 else ''} signed out.", messages.SUCCESS)


class OrganizationOwnedForm(forms.ModelForm):
    """The form of something an organization owns: what its ``owned_fields`` pick (applications,
    channels; one or many) must belong to that organization too."""

    owned_fields: tuple[str, ...] = ()

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization")
        if organization is None and self.instance.organization_id is not None:
            organization = self.instance.organization
        if organization is not None:
            for name in self.owned_fields:
                value = cleaned.get(name)
                chosen = [value] if isinstance(value, Model) else list(value or ())
                if any(each.organization_id != organization.pk for each in chosen):
                    owner = self._meta.model._meta.verbose_name
                    self.add_error(
                        name, f"Choose {self.fields[name].label.lower()} of the {owner}'s own organization only."
                    )
        return cleaned


class OrganizationScopedAdmin(admin.ModelAdmin):
    """Filters every list, form and URL to the user's organizations and checks their role.

    ``organization_path`` leads from the model to its organization; ``manage_roles`` may change it.
    """

    organization_path = "organization"
    manage_roles = selectors.MANAGE_ROLES

    def _organization_id(self, obj) -> int:
        if not self.organization_path:
            return obj.pk
        target = obj
        for step in self.organization_path.split("__"):
            target = getattr(target, step)
        return target.pk

    def _member_filter(self, organizations):
        key = f"{self.organization_path}__in" if self.organization_path else "pk__in"
        return {key: organizations}

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**self._member_filter(selectors.organizations_of(user=request.user)))

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Django would redirect with "does not exist"; an object of another organization must not
            # even be confirmed to exist.
            raise Http404
        return obj

    def managed_object(self, request, object_id):
        """The object for a view that changes it: 404 outside the person's organizations (as
        ``get_object``), 403 where they may only look."""
        obj = self.get_object(request, object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def _role(self, request, obj) -> str | None:
        return selectors.role_in(user=request.user, organization_id=self._organization_id(obj))

    def _manages_any(self, request) -> bool:
        return selectors.organizations_of(user=request.user, roles=self.manage_roles).exists()

    def has_module_permission(self, request):
        return request.user.is_active and (request.user.is_superuser or request.user.memberships.exists())

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return self.has_module_permission(request)
        return self._role(request, obj) is not None

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return self._manages_any(request)
        return self._role(request, obj) in self.manage_roles

    def has_add_permission(self, request):
        return self._manages_any(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Organization and not request.user.is_superuser:
            kwargs["queryset"] = selectors.organizations_of(user=request.user, roles=self.manage_roles)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def deletion_summary(self, obj) -> dict[str, int]:
        """What deleting ``obj`` takes with it, by kind."""
        return {}

    def delete_audited(self, obj, *, by, source) -> None:
        raise NotImplementedError

    def get_deleted_objects(self, objs, request):
        # Django would list every related row: counts instead, never a page of millions of events.
        totals = Counter()
        for obj in objs:
            totals.update(self.deletion_summary(obj))
        shown = [format_html("{} <strong>{}</strong>", self.opts.verbose_name.capitalize(), obj) for obj in objs]
        shown += [f"{count:,} {kind if count != 1 else kind.removesuffix('s')}" for kind, count in totals.items()]
        # The bulk action checks the permission for the model only: each object's organization and the
        # user's role in it decide too. Django refuses the deletion while this set is not empty.
        refused = {f"{self.opts.verbose_name} {obj}" for obj in objs if not self.has_delete_permission(request, obj)}
        return shown, {kind: count for kind, count in totals.items() if count}, refused, []

    def delete_model(self, request, obj):
        self.delete_audited(obj, by=request.user, source=Source.from_request(request))

    def delete_queryset(self, request, queryset):
        objs = list(queryset)
        if not all(self.has_delete_permission(request, obj) for obj in objs):
            raise PermissionDenied
        for obj in objs:
            self.delete_model(request, obj)


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "monthly_event_quota", "requests_per_minute", "retention_days", "is_unlimited"]

    def has_module_permission(self, request):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        if change:
            services.tier_update(
                tier=obj, changes=form_changes(form), by=request.user, source=Source.from_request(request)
            )
        else:
            super().save_model(request, obj, form, change)


class UserByNameField(forms.CharField):
    """A user picked by exact username or e-mail: members of one organization must not be able to
    browse the users of the others, as a select or an autocomplete would let them."""

    def prepare_value(self, value):
        if isinstance(value, int):
            user = User.objects.filter(pk=value).first()
            return user.get_username() if user else ""
        return value.get_username() if isinstance(value, User) else value

    def has_changed(self, initial, data):
        # The initial value is the user's id and the posted one a name: compare them as names.
        return (self.prepare_value(initial) or "") != (data or "").strip()

    # The accounts this field may find: set per request by the form (selectors.member_candidates).
    users = User.objects.none()

    def clean(self, value):
        value = super().clean(value).strip()
        # The same answer whichever of the two was meant, and for an account that exists outside the
        # candidates as for none at all, so neither can be probed.
        users = self.users.filter(username=value)[:1] or self.users.filter(email__iexact=value)[:2]
        if not users:
            raise forms.ValidationError(
                "No one in your organizations has that username or e-mail; a superuser adds new people."
            )
        if len(users) > 1:
            raise forms.ValidationError("Several accounts have that e-mail address; enter the username instead.")
        return users[0]


class MembershipForm(forms.ModelForm):
    user = UserByNameField(label="User (username or e-mail)")

    class Meta:
        model = Membership
        fields = ["user", "organization", "role"]

    candidates = User.objects.none()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].users = self.candidates


def membership_form(request) -> type[MembershipForm]:
    """The membership form for this request's user, finding only the accounts they may add."""
    return type("MembershipForm", (MembershipForm,), {"candidates": selectors.member_candidates(user=request.user)})


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, **{**kwargs, "form": membership_form(request)})

    def _is_owner(self, request, obj) -> bool:
        return obj is not None and selectors.role_in(user=request.user, organization_id=obj.pk) == "owner"

    def has_add_permission(self, request, obj=None):
        # Owners invite people (InvitationAdmin); only a superuser puts an existing account in.
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return self._is_owner(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._is_owner(request, obj)

    def has_view_permission(self, request, obj=None):
        return obj is None or selectors.role_in(user=request.user, organization_id=obj.pk) is not None


class ReadOnlyMemberInline(admin.TabularInline):
    """An inline that members of the parent's organization may see and nobody edits in place."""

    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return True
        organization_id = obj.pk if isinstance(obj, Organization) else obj.organization_id
        return selectors.role_in(user=request.user, organization_id=organization_id) is not None

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class SignOnRuleInline(admin.TabularInline):
    """Who single sign-on places in the organization: set by superusers, since a rule decides for
    people of any domain or group, not only the organization's own."""

    model = SignOnRule
    extra = 0
    fields = ["email_domain", "group", "role"]

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


class ApplicationInline(ReadOnlyMemberInline):
    model = Application
    extra = 0
    fields = ["name", "public_id", "created_at"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    organization_path = ""
    list_display = ["name", "public_id", "tier", "contact_email", "created_at"]
    search_fields = ["name", "public_id"]
    list_filter = ["tier"]
    readonly_fields = ["public_id", "created_at"]
    inlines = [MembershipInline, SignOnRuleInline, ApplicationInline]

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return super().has_change_permission(request)
        return self._role(request, obj) == "owner"

    def get_readonly_fields(self, request, obj=None):
        # The tier and quota grants set what an organization may send: only a superuser assigns them.
        return self.readonly_fields + (
            [] if request.user.is_superuser else ["tier", "quota_monitor_only", "extra_quota", "extra_quota_month"]
        )

    def save_model(self, request, obj, form, change):
        source = Source.from_request(request)
        if change:
            services.organization_update(organization=obj, changes=form_changes(form), by=request.user, source=source)
        else:
            created = services.organization_create(
                name=obj.name,
                tier=obj.tier,
                contact_email=obj.contact_email,
                quota_monitor_only=obj.quota_monitor_only,
                extra_quota=obj.extra_quota,
                extra_quota_month=obj.extra_quota_month,
                by=request.user,
                source=source,
            )
            obj.pk, obj.public_id, obj.created_at = created.pk, created.public_id, created.created_at

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        source = Source.from_request(request)
        for membership in formset.save(commit=False):
            changes = next((form_changes(f) for f in formset.forms if f.instance is membership), {})
            services.membership_save(membership=membership, changes=changes, by=request.user, source=source)
        for membership in formset.deleted_objects:
            services.membership_remove(membership=membership, by=request.user, source=source)

    def deletion_summary(self, obj):
        return selectors.organization_deletion_summary(organization=obj)

    def delete_audited(self, obj, *, by, source):
        services.organization_delete(organization=obj, by=by, source=source)


class CredentialInline(ReadOnlyMemberInline):
    model = Credential
    fields = [
        "token_prefix",
        "service_name",
        "status",
        "created_at",
        "created_by",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "revoke_link",
    ]
    readonly_fields = fields
    ordering = ["-created_at"]
    _manages = False  # set per request (inline instances are made per request)

    def get_formset(self, request, obj=None, **kwargs):
        # Revoke links only for those who may revoke.
        self._manages = (
            obj is not None
            and selectors.role_in(user=request.user, organization_id=obj.organization_id) in selectors.MANAGE_ROLES
        )
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="Status")
    def status(self, credential):
        return credential_status(credential)

    @admin.display(description="")
    def revoke_link(self, credential):
        if credential.revoked_at is not None or not self._manages:
            return ""
        url = reverse("admin:accounts_credential_revoke", args=[credential.pk])
        return format_html('<a class="tk-button tk-danger" href="{}">Revoke</a>', url)


def credential_status(credential) -> str:
    now = timezone.now()
    if credential.revoked_at is not None:
        label, tone = "Revoked", "stopped"
    elif credential.expires_at is not None and credential.expires_at <= now:
        label, tone = "Expired", "stopped"
    elif credential.expires_at is not None:
        label, tone = "Active until rotation ends", "ending"
    else:
        label, tone = "Active", "active"
    return format_html('<span class="tk-status-{}">{}</span>', tone, label)


class IssueForm(forms.Form):
    service_name = forms.CharField(
        label="Malti service name",
        required=False,
        max_length=255,
        help_text="Only for a Malti client's MALTI_API_KEY: the one service (MALTI_SERVICE_NAME) its batches "
        "may name. Leave blank for the SDKs, which may send any service.",
    )


class RotateForm(forms.Form):
    overlap_hours = forms.IntegerField(
        label="Keep the current credentials working for (hours)",
        initial=24,
        min_value=0,
        max_value=24 * 90,
        help_text="Time to roll the new credential out to every client; 0 stops the current ones at once.",
    )


@admin.register(Application)
class ApplicationAdmin(OrganizationScopedAdmin):
    list_display = ["name", "public_id", "organization", "active_credentials", "created_at"]
    search_fields = ["name", "public_id", "organization__name"]
    list_select_related = ["organization"]
    list_filter = [("organization", admin.RelatedOnlyFieldListFilter)]
    readonly_fields = ["public_id", "ingest_url", "created_at"]
    fields = ["organization", "name", "public_id", "ingest_url", "created_at"]
    inlines = [CredentialInline]
    change_form_template = "admin/accounts/application/change_form.html"

    def get_queryset(self, request):
        return selectors.applications_with_active_credential_counts(super().get_queryset(request))

    @admin.display(description="Active credentials", ordering="active_credential_count")
    def active_credentials(self, application):
        return application.active_credential_count

    @admin.display(description="Ingest URL")
    def ingest_url(self, application):
        if application.pk is None:
            return "-"
        return selectors.ingest_url(application.organization.public_id, application.public_id)

    def get_readonly_fields(self, request, obj=None):
        # An application stays in the organization it was created in: its credentials and events do.
        return self.readonly_fields + (["organization"] if obj is not None else [])

    def get_urls(self):
        own = [
            path(
                "<path:object_id>/credentials/issue/",
                self.admin_site.admin_view(self.issue_view),
                name="accounts_application_issue",
            ),
            path(
                "<path:object_id>/credentials/rotate/",
                self.admin_site.admin_view(self.rotate_view),
                name="accounts_application_rotate",
            ),
        ]
        return own + super().get_urls()

    def save_model(self, request, obj, form, change):
        source = Source.from_request(request)
        if change:
            services.application_update(application=obj, changes=form_changes(form), by=request.user, source=source)
            return
        issued = services.application_create(
            organization=obj.organization, name=obj.name, by=request.user, source=source
        )
        created = issued.credential.application
        obj.pk, obj.public_id, obj.created_at = created.pk, created.public_id, created.created_at
        request.issued_credential = issued

    def response_add(self, request, obj, post_url_continue=None):
        return self._issued_page(request, obj, request.issued_credential, "Application created")

    def issue_view(self, request, object_id):
        application = self.managed_object(request, object_id)
        form = IssueForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            issued = services.credential_issue(
                application=application,
                service_name=form.cleaned_data["service_name"],
                by=request.user,
                source=Source.from_request(request),
            )
            return self._issued_page(request, application, issued, "Credential issued")
        return TemplateResponse(
            request,
            "admin/accounts/application/credential_confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "application": application,
                "title": f"Issue a credential for {application.name}",
                "action": "issue",
                "form": form,
                "active": selectors.credentials_active(application=application).count(),
            },
        )

    def rotate_view(self, request, object_id):
        application = self.managed_object(request, object_id)
        form = RotateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            issued = services.credential_rotate(
                application=application,
                overlap=timedelta(hours=form.cleaned_data["overlap_hours"]),
                by=request.user,
                source=Source.from_request(request),
            )
            return self._issued_page(request, application, issued, "Credential rotated")
        return TemplateResponse(
            request,
            "admin/accounts/application/credential_confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "application": application,
                "title": f"Rotate the credentials of {application.name}",
                "action": "rotate",
                "form": form,
                "active": selectors.credentials_active(application=application).count(),
            },
        )

    def _issued_page(self, request, application, issued, heading):
        url = selectors.ingest_url(application.organization.public_id, application.public_id)
        values = {
            "org_id": application.organization.public_id,
            "app_id": application.public_id,
            "api_token": issued.api_token,
            "hmac_secret": issued.hmac_secret,
            "ingest_url": url,
            "endpoint": url.split("/v1/ingest/")[0],
        }
        response = TemplateResponse(
            request,
            "admin/accounts/application/credential_issued.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "application": application,
                "title": heading,
                "issued": issued,
                "values": values,
                "snippets": snippets.all_snippets(**values, service_name=issued.credential.service_name),
            },
        )
        # The secret is in this page only: no cache may keep it.
        response["Cache-Control"] = "no-store"
        return response

    def deletion_summary(self, obj):
        return selectors.application_deletion_summary(application=obj)

    def delete_audited(self, obj, *, by, source):
        services.application_delete(application=obj, by=by, source=source)


class RevocableAdmin(OrganizationScopedAdmin):
    """A secret of an organization's that is revoked, never deleted (its history stays in the list and
    the audit log): a confirm page at ``<id>/revoke/`` and a bulk action, both through ``revoke``."""

    actions = ["revoke_selected"]
    revoke_select_related: tuple[str, ...] = ()

    def revoke(self, obj, request) -> None:
        raise NotImplementedError

    def revoked_message(self, obj) -> str:
        raise NotImplementedError

    def revoked_redirect(self, obj):
        raise NotImplementedError

    def revoke_confirm_context(self, obj) -> dict:
        raise NotImplementedError

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_revoke",
            ),
        ] + super().get_urls()

    def revoke_view(self, request, object_id):
        obj = self.managed_object(request, object_id)
        if request.method == "POST":
            self.revoke(obj, request)
            self.message_user(request, self.revoked_message(obj), messages.SUCCESS)
            return self.revoked_redirect(obj)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        return TemplateResponse(
            request,
            f"admin/{self.opts.app_label}/{self.opts.model_name}/revoke_confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Revoke {self.opts.verbose_name} {obj}",
                **self.revoke_confirm_context(obj),
            },
        )

    @admin.action(description="Revoke selected %(verbose_name_plural)s")
    def revoke_selected(self, request, queryset):
        revoked = 0
        for obj in queryset.select_related(*self.revoke_select_related):
            if self.has_change_permission(request, obj) and obj.revoked_at is None:
                self.revoke(obj, request)
                revoked += 1
        name = self.opts.verbose_name if revoked == 1 else self.opts.verbose_name_plural
        self.message_user(request, f"{revoked} {name} revoked.")


@admin.register(Credential)
class CredentialAdmin(RevocableAdmin):
    organization_path = "application__organization"
    list_display = [
        "token_prefix",
        "application",
        "service_name",
        "status",
        "created_at",
        "created_by",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_select_related = ["application__organization", "created_by"]
    list_filter = [("application__organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["token_prefix", "application__name", "application__public_id"]
    fields = [
        "application",
        "token_prefix",
        "service_name",
        "status",
        "created_at",
        "created_by",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    readonly_fields = fields
    revoke_select_related = ("application__organization",)

    @admin.display(description="Status")
    def status(self, credential):
        return credential_status(credential)

    def has_add_permission(self, request):
        return False

    def revoke(self, credential, request):
        services.credential_revoke(credential=credential, by=request.user, source=Source.from_request(request))

    def revoked_message(self, credential):
        return f"Credential {credential} revoked: requests signed with it now answer 401."

    def revoked_redirect(self, credential):
        return redirect("admin:accounts_application_change", credential.application_id)

    def revoke_confirm_context(self, credential):
        return {"credential": credential, "application": credential.application}


class ReadTokenForm(OrganizationOwnedForm):
    owned_fields = ("applications",)

    class Meta:
        model = ReadToken
        fields = ["organization", "name", "applications"]
        help_texts = {"name": "What it is for, e.g. grafana or the weekly notebook."}


@admin.register(ReadToken)
class ReadTokenAdmin(RevocableAdmin):
    """Read tokens of the stats API: issued here (the token shown once), revoked, never edited or deleted."""

    form = ReadTokenForm
    list_display = [
        "__str__",
        "organization",
        "scope",
        "status",
        "created_at",
        "created_by",
        "last_used_at",
        "revoke_link",
    ]
    list_select_related = ["organization", "created_by"]
    list_filter = [("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "token_prefix", "organization__name"]
    revoke_select_related = ("organization",)
    shown_fields = [
        "organization",
        "name",
        "scope",
        "token_prefix",
        "status",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("applications")

    def get_fields(self, request, obj=None):
        return ReadTokenForm.Meta.fields if obj is None else self.shown_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.shown_fields

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "applications" and not request.user.is_superuser:
            kwargs["queryset"] = Application.objects.filter(
                organization__in=selectors.organizations_of(user=request.user, roles=self.manage_roles)
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="Applications")
    def scope(self, read_token):
        if read_token.every_application:
            return "All"
        return ", ".join(a.name for a in read_token.applications.all()) or "None (deleted)"

    @admin.display(description="Status")
    def status(self, read_token):
        if read_token.revoked_at is not None:
            return format_html('<span class="tk-status-stopped">{}</span>', "Revoked")
        return format_html('<span class="tk-status-active">{}</span>', "Active")

    @admin.display(description="")
    def revoke_link(self, read_token):
        if read_token.revoked_at is not None:
            return ""
        url = reverse("admin:accounts_readtoken_revoke", args=[read_token.pk])
        return format_html('<a class="tk-button tk-danger" href="{}">Revoke</a>', url)

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing of an issued token is editable
        issued = services.read_token_issue(
            organization=form.cleaned_data["organization"],
            name=form.cleaned_data["name"],
            applications=form.cleaned_data["applications"],
            by=request.user,
            source=Source.from_request(request),
        )
        obj.pk, obj.created_at = issued.read_token.pk, issued.read_token.created_at
        request.issued_read_token = issued

    def save_related(self, request, form, formsets, change):
        """The service has set the applications; the form must not write them a second time."""

    def response_add(self, request, obj, post_url_continue=None):
        issued = request.issued_read_token
        response = TemplateResponse(
            request,
            "admin/accounts/readtoken/issued.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Read token issued",
                "read_token": issued.read_token,
                "token": issued.token,
                "events_url": (
                    f"{settings.PUBLIC_URL.rstrip('/')}/v1/stats/{issued.read_token.organization.public_id}"
                    "/{app_id}/events"
                ),
            },
        )
        # The token is in this page only: no cache may keep it.
        response["Cache-Control"] = "no-store"
        return response

    def revoke(self, read_token, request):
        services.read_token_revoke(read_token=read_token, by=request.user, source=Source.from_request(request))

    def revoked_message(self, read_token):
        return f"Read token {read_token} revoked: reads with it now answer 401."

    def revoked_redirect(self, read_token):
        return redirect("admin:accounts_readtoken_changelist")

    def revoke_confirm_context(self, read_token):
        return {"read_token": read_token}


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin):
    manage_roles = ("owner",)
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "user__email", "organization__name"]
    form = MembershipForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        return super().get_form(request, obj, change, **{**kwargs, "form": membership_form(request)})

    def has_add_permission(self, request):
        # Owners invite people (InvitationAdmin); only a superuser puts an existing account in.
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        services.membership_save(
            membership=obj, changes=form_changes(form), by=request.user, source=Source.from_request(request)
        )

    def delete_audited(self, obj, *, by, source):
        services.membership_remove(membership=obj, by=by, source=source)


class InvitationForm(forms.ModelForm):
    class Meta:
        model = Invitation
        fields = ["organization", "email", "role"]
        help_texts = {"email": "The link to join is sent here; it works once."}


@admin.register(Invitation)
class InvitationAdmin(RevocableAdmin):
    """Owners invite an address with a role; the invitation is revoked or re-sent, never edited."""

    manage_roles = ("owner",)
    form = InvitationForm
    actions = ["revoke_selected", "resend_selected"]
    list_display = ["email", "organization", "role", "status", "created_by", "sent_at", "expires_at", "revoke_link"]
    list_select_related = ["organization", "created_by"]
    list_filter = [("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["email", "organization__name"]
    revoke_select_related = ("organization",)
    shown_fields = [
        "organization",
        "email",
        "role",
        "status",
        "created_by",
        "created_at",
        "sent_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]

    def get_fields(self, request, obj=None):
        return InvitationForm.Meta.fields if obj is None else self.shown_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.shown_fields

    @admin.display(description="Status")
    def status(self, invitation):
        if invitation.accepted_at is not None:
            label, tone = "Accepted", "active"
        elif invitation.revoked_at is not None:
            label, tone = "Revoked", "stopped"
        elif not selectors.invitation_usable(invitation=invitation):
            label, tone = "Expired", "stopped"
        else:
            label, tone = "Waiting", "ending"
        return format_html('<span class="tk-status-{}">{}</span>', tone, label)

    @admin.display(description="")
    def revoke_link(self, invitation):
        if not selectors.invitation_usable(invitation=invitation):
            return ""
        url = reverse("admin:accounts_invitation_revoke", args=[invitation.pk])
        return format_html('<a class="tk-button tk-danger" href="{}">Revoke</a>', url)

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing of a sent invitation is editable
        sent = services.invitation_send(
            organization=form.cleaned_data["organization"],
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            by=request.user,
            source=Source.from_request(request),
        )
        obj.pk, obj.created_at = sent.invitation.pk, sent.invitation.created_at
        request.invitation_url = sent.url

    def response_add(self, request, obj, post_url_continue=None):
        self._sent_message(request, obj, request.invitation_url)
        return redirect("admin:accounts_invitation_changelist")

    def _sent_message(self, request, invitation, url):
        # The link is shown to the inviter too: without a mail server (EMAIL_URL) they pass it on themselves.
        self.message_user(
            request,
            format_html(
                "Invitation sent to {}. Its link works once, for {} days: {}",
                invitation.email,
                settings.INVITATION_VALID_DAYS,
                url,
            ),
            messages.SUCCESS,
        )

    @admin.action(description="Re-send selected invitations with a new link")
    def resend_selected(self, request, queryset):
        for invitation in queryset.select_related("organization"):
            if self.has_change_permission(request, invitation) and invitation.accepted_at is None:
                sent = services.invitation_resend(
                    invitation=invitation, by=request.user, source=Source.from_request(request)
                )
                self._sent_message(request, sent.invitation, sent.url)

    def revoke(self, invitation, request):
        services.invitation_revoke(invitation=invitation, by=request.user, source=Source.from_request(request))

    def revoked_message(self, invitation):
        return f"Invitation of {invitation.email} revoked: its link no longer works."

    def revoked_redirect(self, invitation):
        return redirect("admin:accounts_invitation_changelist")

    def revoke_confirm_context(self, invitation):
        return {"invitation": invitation}


class AuditOrganizationFilter(admin.SimpleListFilter):
    title = "organization"
    parameter_name = "organization"

    def lookups(self, request, model_admin):
        visible = model_admin.get_queryset(request).exclude(organization_id=None)
        return sorted(set(visible.values_list("organization_id", "organization_name")), key=lambda pair: pair[1])

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            organization_id = int(self.value())
        except ValueError:
            # Django's answer to any malformed filter: back to the list with an error flag.
            raise IncorrectLookupParameters(f"organization={self.value()!r} is not an id") from None
        return queryset.filter(organization_id=organization_id)


@admin.register(AuditEntry)
class AuditEntryAdmin(RecordAdmin):
    list_display = ["when", "who", "action", "organization", "target", "source_ip"]
    list_filter = ["action", AuditOrganizationFilter]
    search_fields = ["actor_name", "target", "organization_name"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "created_at",
        "actor",
        "actor_name",
        "action",
        "organization_id",
        "organization_name",
        "target",
        "source_ip",
        "user_agent",
        "details",
    ]

    @admin.display(description="When", ordering="created_at")
    def when(self, entry):
        return entry.created_at

    @admin.display(description="Who", ordering="actor_name")
    def who(self, entry):
        return entry.actor_name or "system"

    @admin.display(description="Organization", ordering="organization_name")
    def organization(self, entry):
        return entry.organization_name or "–"

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Audit log", **(extra_context or {})})

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        # Their organizations' entries, and their own sign-ins (which belong to no organization); not
        # what they did in an organization they have left.
        return queryset.filter(
            Q(organization_id__in=selectors.organizations_of(user=request.user).values("pk"))
            | Q(actor=request.user, organization_id__isnull=True)
        )

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404
        return obj

    def has_module_permission(self, request):
        return request.user.is_active and (request.user.is_superuser or request.user.memberships.exists())

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

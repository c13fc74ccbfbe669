"""Alert rules, channels and the delivery log in the operators' admin, scoped to the user's
organizations with the same roles as credentials: owners and admins manage, viewers look."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts import selectors
from accounts.admin import OrganizationOwnedForm, OrganizationScopedAdmin, RecordAdmin
from accounts.models import Application, Membership
from alerts import outbound, services
from alerts.kinds import KINDS
from alerts.models import AlertRule, Channel, Delivery, Notification


def _parameters_help() -> str:
    return (
        "JSON. "
        + "; ".join(f"{name}: {', '.join(kind.parameters)}" for name, kind in KINDS.items())
        + ". Missing ones take their defaults."
    )


class AlertRuleForm(OrganizationOwnedForm):
    owned_fields = ("application", "channels")

    class Meta:
        model = AlertRule
        fields = [
            "organization",
            "application",
            "name",
            "kind",
            "parameters",
            "event_type",
            "service_version",
            "channels",
            "renotify_minutes",
            "muted_until",
        ]
        help_texts = {"parameters": _parameters_help()}

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind in KINDS:
            try:
                cleaned["parameters"] = KINDS[kind].clean(cleaned.get("parameters") or {})
            except ValueError as error:
                self.add_error("parameters", str(error))
        return cleaned


def state_badge(rule: AlertRule):
    if rule.state == AlertRule.State.FIRING:
        label = "Firing, acknowledged" if rule.acknowledged_at else "Firing"
        return format_html('<span class="tk-status-ending">{}</span>', label)
    return format_html('<span class="tk-status-active">{}</span>', "OK")


class NotificationInline(admin.TabularInline):
    model = Notification
    fields = ["created_at", "type", "reminder", "muted", "value", "threshold", "deliveries_sent"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ["-created_at", "-id"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("deliveries")

    @admin.display(description="Deliveries")
    def deliveries_sent(self, notification):
        deliveries = list(notification.deliveries.all())
        sent = sum(1 for delivery in deliveries if delivery.status == Delivery.Status.SENT)
        return f"{sent} sent, {len(deliveries) - sent} failed attempts" if deliveries else "–"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AlertRule)
class AlertRuleAdmin(OrganizationScopedAdmin):
    form = AlertRuleForm
    list_display = [
        "name",
        "organization",
        "scope",
        "kind",
        "state_display",
        "last_value",
        "last_evaluated_at",
        "muted_until",
    ]
    list_select_related = ["organization", "application"]
    list_filter = ["state", "kind", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "organization__name", "application__name"]
    readonly_fields = [
        "state_display",
        "state_since",
        "last_value",
        "last_evaluated_at",
        "last_notified_at",
        "acknowledged_at",
        "acknowledged_by",
    ]
    inlines = [NotificationInline]
    actions = ["acknowledge_selected", "mute_hour_selected", "mute_day_selected", "unmute_selected"]

    @admin.display(description="Application")
    def scope(self, rule):
        return rule.application.name if rule.application else "Every application"

    @admin.display(description="State", ordering="state")
    def state_display(self, rule):
        return state_badge(rule)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Application and not request.user.is_superuser:
            kwargs["queryset"] = Application.objects.filter(
                organization__in=selectors.organizations_of(user=request.user, roles=self.manage_roles)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "channels" and not request.user.is_superuser:
            kwargs["queryset"] = Channel.objects.filter(
                organization__in=selectors.organizations_of(user=request.user, roles=self.manage_roles)
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        services.rule_save(rule=obj)

    def delete_audited(self, obj, *, by, source):
        services.rule_delete(rule=obj)

    def _each_managed(self, request, queryset, change) -> int:
        done = 0
        for rule in queryset:
            if self.has_change_permission(request, rule) and change(rule):
                done += 1
        return done

    @admin.action(description="Acknowledge selected firing rules (no reminders until they resolve)")
    def acknowledge_selected(self, request, queryset):
        done = self._each_managed(request, queryset, lambda rule: services.rule_acknowledge(rule=rule, by=request.user))
        self.message_user(request, f"{done} firing rule{'s' if done != 1 else ''} acknowledged.")

    def _mute(self, request, queryset, until, message):
        done = self._each_managed(request, queryset, lambda rule: services.rule_mute(rule=rule, until=until) or True)
        self.message_user(request, f"{done} rule{'s' if done != 1 else ''} {message}.")

    @admin.action(description="Mute selected rules for an hour")
    def mute_hour_selected(self, request, queryset):
        self._mute(request, queryset, timezone.now() + timedelta(hours=1), "muted for an hour")

    @admin.action(description="Mute selected rules for a day")
    def mute_day_selected(self, request, queryset):
        self._mute(request, queryset, timezone.now() + timedelta(days=1), "muted for a day")

    @admin.action(description="Unmute selected rules")
    def unmute_selected(self, request, queryset):
        self._mute(request, queryset, None, "unmuted")


class ChannelForm(forms.ModelForm):
    url = forms.URLField(
        max_length=2000,
        required=False,
        assume_scheme="https",
        label="URL",
        help_text="Slack and signed webhooks: where to POST.",
    )
    email_roles = forms.MultipleChoiceField(
        choices=Membership.Role.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="E-mail the members who are",
        help_text="E-mail channels: members of the organization with these roles.",
    )

    class Meta:
        model = Channel
        fields = ["organization", "name", "kind", "url", "email_roles", "email_addresses"]

    def clean(self):
        cleaned = super().clean()
        kind, url = cleaned.get("kind"), cleaned.get("url") or ""
        if kind in (Channel.Kind.SLACK, Channel.Kind.WEBHOOK):
            if not url.startswith(("http://", "https://")):
                self.add_error("url", "Give the http:// or https:// URL to send to.")
            else:
                try:
                    outbound.url_check(url)
                except outbound.RefusedUrl as refused:
                    self.add_error("url", str(refused))
        if kind == Channel.Kind.EMAIL:
            addresses = services.email_addresses_split(cleaned.get("email_addresses") or "")
            for address in addresses:
                try:
                    forms.EmailField().clean(address)
                except forms.ValidationError:
                    self.add_error("email_addresses", f"{address} is not an e-mail address.")
            if not cleaned.get("email_roles") and not addresses:
                self.add_error("email_roles", "Choose a role or give an address.")
        return cleaned


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["created_at", "notification", "attempt", "status", "status_code", "duration_ms", "error"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-created_at", "-id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("notification")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Channel)
class ChannelAdmin(OrganizationScopedAdmin):
    form = ChannelForm
    list_display = ["name", "organization", "kind", "target", "created_at", "test_link"]
    list_select_related = ["organization"]
    list_filter = ["kind", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "organization__name", "url"]
    inlines = [DeliveryInline]
    actions = ["test_selected"]

    def get_readonly_fields(self, request, obj=None):
        # A channel's kind decides what its secret is: made once, with the channel.
        return [] if obj is None else ["organization", "kind"]

    @admin.display(description="Sends to")
    def target(self, channel):
        if channel.kind == Channel.Kind.EMAIL:
            roles = ", ".join(f"{role}s" for role in channel.email_roles)
            return ", ".join(filter(None, [roles, channel.email_addresses.replace("\n", ", ")]))
        return channel.url

    @admin.display(description="")
    def test_link(self, channel):
        return format_html(
            '<a class="tk-button tk-quiet" href="{}">Send a test</a>',
            reverse("admin:alerts_channel_test", args=[channel.pk]),
        )

    def get_urls(self):
        return [
            path("<path:object_id>/test/", self.admin_site.admin_view(self.test_view), name="alerts_channel_test"),
        ] + super().get_urls()

    def test_view(self, request, object_id):
        channel = self.managed_object(request, object_id)
        if request.method == "POST":
            services.channel_test_send(channel=channel)
            self.message_user(
                request, f"A test is on its way to {channel.name}: its delivery appears below.", messages.SUCCESS
            )
            return redirect("admin:alerts_channel_change", channel.pk)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        return TemplateResponse(
            request,
            "admin/alerts/channel/test_confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "channel": channel,
                "title": f"Send a test to {channel.name}",
            },
        )

    @admin.action(description="Send a test to the selected channels")
    def test_selected(self, request, queryset):
        sent = 0
        for channel in queryset:
            if self.has_change_permission(request, channel):
                services.channel_test_send(channel=channel)
                sent += 1
        self.message_user(request, f"{sent} test{'s' if sent != 1 else ''} on their way.")

    def save_model(self, request, obj, form, change):
        if change:
            services.channel_update(channel=obj)
            return
        issued = services.channel_create(
            organization=obj.organization,
            name=obj.name,
            kind=obj.kind,
            url=obj.url,
            email_roles=form.cleaned_data["email_roles"],
            email_addresses=obj.email_addresses,
        )
        obj.pk, obj.created_at = issued.channel.pk, issued.channel.created_at
        request.issued_channel = issued

    def response_add(self, request, obj, post_url_continue=None):
        issued = request.issued_channel
        if not issued.webhook_secret:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "admin/alerts/channel/secret.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Signed webhook created",
                "channel": issued.channel,
                "secret": issued.webhook_secret,
            },
        )
        # The secret is in this page only: no cache may keep it.
        response["Cache-Control"] = "no-store"
        return response

    def delete_audited(self, obj, *, by, source):
        services.channel_delete(channel=obj)


@admin.register(Delivery)
class DeliveryAdmin(RecordAdmin, OrganizationScopedAdmin):
    """Every attempt to send a notification, newest first: the delivery log."""

    organization_path = "channel__organization"
    list_display = ["created_at", "channel", "kind", "rule", "attempt", "status", "status_code", "duration_ms", "error"]
    list_select_related = ["channel__organization", "notification__rule"]
    list_filter = ["status", ("channel__organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["channel__name", "notification__rule__name", "error"]
    date_hierarchy = "created_at"

    @admin.display(description="Notification")
    def kind(self, delivery):
        return delivery.notification.get_type_display()

    @admin.display(description="Rule")
    def rule(self, delivery):
        return delivery.notification.rule or "–"

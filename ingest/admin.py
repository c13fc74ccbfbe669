"""Archives in the operators' admin: listed per organization, verified on demand; erasure; the
events the rollup job had to skip; and scheduled exports with the files they wrote."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path

from accounts import selectors
from accounts.admin import OrganizationOwnedForm, OrganizationScopedAdmin, RecordAdmin
from accounts.models import Application
from accounts.services import Source
from ingest.models import Archive, Event, ExportRun, ExportSchedule, RollupSkip, TrackedProperty
from ingest.retention import erasure, scheduled_exports
from ingest.retention.archive import archive_verify
from ingest.retention.erasure import ErasureBusy, user_events_erase
from ingest.rollups import services as rollup_services


@admin.register(Archive)
class ArchiveAdmin(RecordAdmin, OrganizationScopedAdmin):
    """Archives of events past retention. Never deleted by hand: an archive holds the only copy of its
    events, and goes with its organization, never alone."""

    list_display = ["application", "organization", "start", "end", "row_count", "size", "state", "checksum_state"]
    list_select_related = ["application", "organization"]
    list_filter = ["state", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["application__name", "application__public_id", "organization__name"]
    date_hierarchy = "start"
    fields = [
        "organization",
        "application",
        "start",
        "end",
        "state",
        "row_count",
        "size",
        "checksum",
        "checksum_state",
        "path",
        "created_at",
        "archived_at",
        "restored_at",
    ]
    readonly_fields = fields
    actions = ["verify_selected"]

    def has_verify_permission(self, request):
        # Reading archives back costs their full size in I/O: for those who manage them, not viewers.
        return self._manages_any(request)

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, archive):
        return filesizeformat(archive.size_bytes)

    @admin.display(description="Checksum")
    def checksum_state(self, archive):
        if archive.checksum_ok is None:
            return "not read back yet"
        when = f"{archive.verified_at:%Y-%m-%d %H:%M} UTC" if archive.verified_at else ""
        return f"{'matches' if archive.checksum_ok else 'DOES NOT MATCH'} ({when})"

    @admin.action(description="Read back and verify the checksums of the selected archives", permissions=["verify"])
    def verify_selected(self, request, queryset):
        results = [
            archive_verify(archive=archive)
            for archive in queryset.select_related("application__organization")
            if self._role(request, archive) in self.manage_roles
        ]
        failed = results.count(False)
        self.message_user(
            request,
            f"{len(results) - failed} archives match their manifests; {failed} do not.",
            messages.ERROR if failed else messages.SUCCESS,
        )

    def get_urls(self):
        return [
            path("erase/", self.admin_site.admin_view(self.erase_view), name="ingest_archive_erase")
        ] + super().get_urls()

    def erase_view(self, request):
        managed = Application.objects.filter(
            organization__in=selectors.organizations_of(user=request.user, roles=self.manage_roles)
        ).select_related("organization")
        if not managed.exists():
            raise PermissionDenied
        form = ErasureForm(request.POST or None, applications=managed)
        if request.method == "POST" and form.is_valid():
            try:
                erased = user_events_erase(
                    application=form.cleaned_data["application"],
                    user_id=form.cleaned_data["user_id"],
                    via="admin",
                    by=request.user,
                    source=Source.from_request(request),
                    lock_wait=erasure.REQUEST_LOCK_WAIT_SECONDS,
                )
            except ErasureBusy:
                form.add_error(
                    None,
                    "Archive work is in progress (an archive run, restore or export): nothing "
                    "was erased. Try again in a few minutes.",
                )
            else:
                self.message_user(
                    request,
                    f"Erased {erased.events} stored and {erased.archived_events} archived "
                    f"events ({erased.archives_rewritten} archives rewritten). Receipt "
                    f"#{erased.receipt.pk} is in the audit log.",
                    messages.SUCCESS,
                )
                return redirect("admin:accounts_auditentry_change", erased.receipt.pk)
        return TemplateResponse(
            request,
            "admin/ingest/archive/erase.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "form": form,
                "title": "Erase a user's events",
            },
        )


class ErasureForm(forms.Form):
    application = forms.ModelChoiceField(queryset=Application.objects.none())
    user_id = forms.CharField(
        max_length=Event._meta.get_field("user_id").max_length,
        strip=True,
        help_text="As the SDK sent it, e.g. client_3f2a…",
    )

    def __init__(self, *args, applications, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["application"].queryset = applications


@admin.register(RollupSkip)
class RollupSkipAdmin(OrganizationScopedAdmin):
    list_display = [
        "created_at",
        "organization",
        "application",
        "kind",
        "events",
        "first_timestamp",
        "last_timestamp",
        "rebuild",
    ]
    list_select_related = ["application", "organization"]
    list_filter = ["kind", ("organization", admin.RelatedOnlyFieldListFilter)]
    date_hierarchy = "created_at"
    fields = [
        "organization",
        "application",
        "kind",
        "events",
        "first_event_id",
        "last_event_id",
        "first_timestamp",
        "last_timestamp",
        "error",
        "rebuild",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description="To count them again")
    def rebuild(self, skip):
        until = skip.last_timestamp + timedelta(days=1)
        return f"manage.py rebuild_rollups --since {skip.first_timestamp:%Y-%m-%d} --until {until:%Y-%m-%d}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ExportScheduleForm(OrganizationOwnedForm):
    owned_fields = ("applications",)
    formats = forms.MultipleChoiceField(choices=ExportSchedule.Format.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ExportSchedule
        fields = ["organization", "enabled", "formats", "prefix", "applications", "start_date"]


@admin.register(ExportSchedule)
class ExportScheduleAdmin(OrganizationScopedAdmin):
    """Daily exports of an organization's events to the archive storage (``ingest.retention.scheduled_exports``)."""

    form = ExportScheduleForm
    list_display = ["prefix", "organization", "enabled", "format_list", "scope", "start_date", "folder"]
    list_select_related = ["organization"]
    list_filter = ["enabled", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["prefix", "organization__name"]
    fields = ["organization", "enabled", "formats", "prefix", "folder", "applications", "start_date"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("applications")

    def get_readonly_fields(self, request, obj=None):
        # Its runs and files belong to the organization it was made for.
        return ["organization", "folder"] if obj is not None else ["folder"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "applications" and not request.user.is_superuser:
            kwargs["queryset"] = Application.objects.filter(
                organization__in=selectors.organizations_of(user=request.user, roles=self.manage_roles)
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="Formats")
    def format_list(self, schedule):
        return ", ".join(scheduled_exports.schedule_formats(schedule))

    @admin.display(description="Applications")
    def scope(self, schedule):
        if schedule.every_application:
            return "All"
        return ", ".join(a.name for a in schedule.applications.all()) or "None (deleted)"

    def save_model(self, request, obj, form, change):
        obj.every_application = not form.cleaned_data.get("applications")
        super().save_model(request, obj, form, change)

    @admin.display(description="Files go to")
    def folder(self, schedule):
        if schedule.pk is None:
            return "-"
        return f"{scheduled_exports.ROOT}/{schedule.organization.public_id}/{schedule.prefix}/<app id>/YYYY/MM/DD/"

    def delete_audited(self, obj, *, by, source):
        # The files written stay on the storage; only the schedule and its record of runs go.
        scheduled_exports.export_schedule_delete(schedule=obj)


@admin.register(ExportRun)
class ExportRunAdmin(RecordAdmin, OrganizationScopedAdmin):
    """Files the scheduled exports wrote or failed to write: read-only; re-exported on demand."""

    list_display = [
        "day",
        "application",
        "format",
        "state",
        "row_count",
        "size",
        "attempts",
        "next_attempt_at",
        "short_error",
    ]
    list_select_related = ["application", "organization"]
    list_filter = ["state", "format", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["application__name", "application__public_id", "path"]
    date_hierarchy = "day"
    fields = [
        "organization",
        "application",
        "day",
        "format",
        "state",
        "path",
        "row_count",
        "size",
        "checksum",
        "attempts",
        "next_attempt_at",
        "error",
        "started_at",
        "finished_at",
    ]
    readonly_fields = fields
    actions = ["reexport_selected"]

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, run):
        return filesizeformat(run.size_bytes)

    @admin.display(description="Error")
    def short_error(self, run):
        return run.error[:120]

    def has_reexport_permission(self, request):
        return self._manages_any(request)

    @admin.action(description="Re-export the selected files", permissions=["reexport"])
    def reexport_selected(self, request, queryset):
        managed = (
            queryset
            if request.user.is_superuser
            else queryset.filter(
                organization__in=selectors.organizations_of(user=request.user, roles=self.manage_roles)
            )
        )
        redone = scheduled_exports.export_runs_redo(runs=managed)
        from ingest import tasks  # on use: web workers only send this task, and need not load the tasks

        transaction.on_commit(tasks.scheduled_exports_run.delay)
        self.message_user(request, f"{redone} files will be written again in a moment.", messages.SUCCESS)


class TrackedPropertyForm(forms.ModelForm):
    class Meta:
        model = TrackedProperty
        fields = ["application", "event_type", "path", "kind"]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and not self.errors:
            rollup_services.tracked_property_check(
                application=cleaned["application"], event_type=cleaned["event_type"], path=cleaned["path"]
            )
        return cleaned


@admin.register(TrackedProperty)
class TrackedPropertyAdmin(OrganizationScopedAdmin):
    """Properties of an event type whose values the dashboards break down (``ingest.rollups.properties``)."""

    organization_path = "application__organization"
    form = TrackedPropertyForm
    list_display = ["event_type", "path", "kind", "application", "created_at"]
    list_select_related = ["application__organization"]
    list_filter = ["kind", ("application", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["event_type", "path", "application__name"]

    def get_readonly_fields(self, request, obj=None):
        # Another path or kind would mix two properties' figures: delete it and track the new one.
        return ["application", "event_type", "path", "kind"] if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "application" and not request.user.is_superuser:
            kwargs["queryset"] = Application.objects.filter(
                organization__in=selectors.organizations_of(user=request.user, roles=self.manage_roles)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            return
        tracked = rollup_services.tracked_property_create(
            application=obj.application, event_type=obj.event_type, path=obj.path, kind=obj.kind
        )
        obj.pk = tracked.pk
        messages.info(
            request,
            f"Tracking {tracked}: the last {rollup_services.PROPERTY_BACKFILL_DAYS} days' events are being "
            "counted in the background; new ones are counted as they arrive.",
        )

    def delete_audited(self, obj, *, by, source):
        rollup_services.tracked_property_delete(tracked_property=obj)

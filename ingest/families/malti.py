"""Malti request telemetry (docs/protocols.md#malti): its batch format, checked and turned
into ordinary events.

A Malti record becomes an ``http_request`` event of category ``http`` whose ``data`` is
``{"method", "endpoint", "status", "response_time", "consumer", "node"}`` (and ``"context"`` when
sent): the same shape the Python SDK's request middleware sends through the signed ingest, so the
API panel and its rollups read both alike.

Hot path: a batch of a few hundred records is decoded by msgspec into compiled structs in one
pass, and each record's ``data`` is encoded by msgspec too; only a batch with a malformed record is
decoded again record by record, to name every bad one.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone

from ingest.access.admission import quota_reserve, seconds_to_month_end, utc_now
from ingest.access.tokens import body_encoding_check
from ingest.access.verification import Caller
from ingest.errors import (
    ApiError,
    BadRequest,
    PayloadTooLarge,
    QuotaExceeded,
    ServiceMismatch,
    error_body,
    error_response,
)
from ingest.models import Outcome
from ingest.pipeline import Decoded, Intake, TokenFamily
from ingest.storage.schema import (
    NUL_ESCAPE,
    AwareDatetime,
    CheckedBatch,
    batch_of,
    envelope_make,
    failed_field,
    has_nul,
    in_calendar,
    too_deep,
)
from ingest.storage.services import Accepted, events_accept, outcomes_count

SOURCE = "malti/1"
EVENT_TYPE = "http_request"
CATEGORY = "http"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class Record(msgspec.Struct):
    service: Name
    method: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    endpoint: Annotated[str, msgspec.Meta(max_length=1024)]
    status: Annotated[int, msgspec.Meta(ge=100, le=599)]
    response_time: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]  # milliseconds
    consumer: Annotated[str, msgspec.Meta(max_length=255)]
    created_at: AwareDatetime
    node: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    context: Annotated[str, msgspec.Meta(max_length=4096)] | None = None


class RequestData(msgspec.Struct, omit_defaults=True):
    """The stored ``data`` of an ``http_request`` event: the contract with the SDK middleware."""

    method: str
    endpoint: str
    status: int
    response_time: int
    consumer: str
    node: str | None
    context: str | None = None


class _Batch(msgspec.Struct):
    requests: list[Record]


class _RawBatch(msgspec.Struct):
    requests: list[msgspec.Raw]


_batch_decoder = msgspec.json.Decoder(_Batch)
_raw_batch_decoder = msgspec.json.Decoder(_RawBatch)
_record_decoder = msgspec.json.Decoder(Record)
_encode = msgspec.json.Encoder().encode


class EmptyBatch(BadRequest):
    code = "empty_batch"


@dataclass(frozen=True)
class RecordError:
    index: int
    field: str | None
    message: str

    def as_dict(self) -> dict:
        return {"index": self.index, "field": self.field, "message": self.message}


class InvalidRecords(ApiError):
    """Some records are malformed: the batch is refused whole, each bad record named."""

    status = 422
    code = "invalid_record"

    def __init__(self, errors: list[RecordError], total: int):
        first = errors[0]
        super().__init__(
            f"{len(errors)} of {total} records are malformed; the first, at index {first.index}: {first.message}"
        )
        self.errors, self.total = errors, total
        self.events = total  # counted invalid: every record of the batch


def _record_error(index: int, exc: msgspec.ValidationError) -> RecordError:
    missing, at_path = failed_field(exc)
    return RecordError(index, at_path or missing, str(exc))


def _record_check(index: int, record: Record, max_age: timedelta | None, now: datetime) -> RecordError | None:
    if not in_calendar(record.created_at):
        return RecordError(index, "created_at", "created_at is out of range once converted to UTC")
    if max_age is not None and abs(now - record.created_at) > max_age:
        return RecordError(index, "created_at", f"created_at must be within {max_age.days} days of the server's time")
    return None


def records_decode(body: bytes, *, max_records: int, max_age: timedelta | None, now: datetime) -> list[Record]:
    """The batch's records, all well formed, or the reason there are none: ``BadRequest`` (not
    ``{"requests": [...]}``), ``EmptyBatch``, ``PayloadTooLarge`` (over ``max_records``) or
    ``InvalidRecords`` naming every malformed record."""
    try:
        body.decode("utf-8")
        records = _batch_decoder.decode(body).requests
    except UnicodeDecodeError as exc:
        raise BadRequest(f"Body is not valid UTF-8: {exc}") from None
    except msgspec.ValidationError:
        records = None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"Body is not valid JSON: {exc}") from None
    except RecursionError:
        raise too_deep() from None
    if records is None:
        # Decoded again, field by field: the first pass stopped at the first field of the wrong
        # type, so a later part of the body may still be malformed JSON.
        try:
            raw = _raw_batch_decoder.decode(body).requests
        except msgspec.ValidationError as exc:
            raise BadRequest(f'Body must be a JSON object {{"requests": [...]}}: {exc}') from None
        except msgspec.DecodeError as exc:
            raise BadRequest(f"Body is not valid JSON: {exc}") from None
        except RecursionError:
            raise too_deep() from None
        if len(raw) > max_records:
            raise PayloadTooLarge(f"Batch has {len(raw)} records; the limit is {max_records}")
        records, errors = [], []
        for index, item in enumerate(raw):
            try:
                records.append(_record_decoder.decode(item))
            except msgspec.ValidationError as exc:
                errors.append(_record_error(index, exc))
        if not errors:  # each record is fine alone, the batch as a whole is not (a repeated "requests", say)
            raise BadRequest('Body must be a JSON object with one "requests" array of records')
        raise InvalidRecords(errors, len(raw))
    if not records:
        raise EmptyBatch("The batch has no requests")
    if len(records) > max_records:
        raise PayloadTooLarge(f"Batch has {len(records)} records; the limit is {max_records}")
    nul = NUL_ESCAPE in body  # PostgreSQL's text and jsonb refuse NUL, which JSON carries only as \u0000
    errors = []
    for index, record in enumerate(records):
        if nul and has_nul(
            record.service, record.method, record.endpoint, record.consumer, record.node, record.context
        ):
            errors.append(RecordError(index, None, "text fields must not contain NUL characters"))
        elif error := _record_check(index, record, max_age, now):
            errors.append(error)
    if errors:
        raise InvalidRecords(errors, len(records))
    return records


def batch_service(records: list[Record], *, key_service: str) -> str:
    """The one service the batch is for: the key's, or for a key that names none, the first
    record's. Raises ``ServiceMismatch`` when any record names another."""
    service = key_service or records[0].service
    for index, record in enumerate(records):
        if record.service != service:
            raise ServiceMismatch(
                f"Record {index} is for service {record.service[:100]!r}, but this batch "
                f"(and its key) is for {service[:100]!r}"
            )
    return service


def _records_as_events(records: list[Record]) -> CheckedBatch:
    """The records as ``http_request`` envelopes for ``events_accept``."""
    return batch_of(
        [
            envelope_make(
                source=SOURCE,
                event_type=EVENT_TYPE,
                category=CATEGORY,
                timestamp=r.created_at,
                service_name=r.service,
                data=_encode(
                    RequestData(r.method, r.endpoint, r.status, r.response_time, r.consumer, r.node, r.context)
                ),
            )
            for r in records
        ]
    )


class MaltiFamily(TokenFamily):
    """``POST /api/v1/ingest``: a batch of Malti request records, by the ``X-API-Key`` of a key
    issued with the service's name (docs/protocols.md#malti).

    The Malti client drops a batch on any answer but 200, and never resends it: so a batch is stored
    whole or not at all, and 200 comes only once every record is committed. A batch that the
    month's quota admits only in part is refused whole (429), since a 200 would tell the client
    that records we did not store were delivered.
    """

    def decode(self, intake: Intake, caller: Caller) -> Decoded:
        body_encoding_check(intake.meta)
        max_age_days = settings.INGEST_MAX_EVENT_AGE_DAYS
        records = records_decode(
            intake.body,
            max_records=settings.INGEST_MAX_BATCH_SIZE,
            now=timezone.now(),
            max_age=timedelta(days=max_age_days) if max_age_days else None,
        )
        try:
            service = batch_service(records, key_service=caller.bound_service)
        except ApiError as error:
            error.events = len(records)
            raise
        return Decoded(checked=_records_as_events(records), total=len(records), context=service)

    def store(self, intake: Intake, caller: Caller, decoded: Decoded, reserved: int | None) -> Accepted:
        wanted = decoded.total
        granted = quota_reserve(target=caller.target, wanted=wanted) if reserved is None else reserved
        if granted < wanted:
            outcomes_count(
                target=caller.target, counts=Counter({(Outcome.Kind.OVER_QUOTA, ""): wanted}), quota_unused=granted
            )
            raise QuotaExceeded(
                f"The organization's monthly event quota has room for {granted} of these "
                f"{wanted} requests; nothing was stored",
                headers={"Retry-After": str(seconds_to_month_end(utc_now()))},
            )
        return events_accept(
            target=caller.target,
            checked=decoded.checked,
            reserved=granted,
            sdk_version=self.sdk_version(intake),
            whole=True,
        )

    def answer(self, intake: Intake, decoded: Decoded, accepted: Accepted) -> HttpResponse:
        if accepted.errors:  # refused by the database although well formed: say which, never 200
            errors = [RecordError(error.index, None, error.message) for error in accepted.errors]
            return self.refuse(intake, InvalidRecords(errors, decoded.total))
        body = {"message": f"{decoded.total} requests stored", "count": decoded.total, "service": decoded.context}
        return HttpResponse(_encode(body), content_type="application/json")

    def refuse(self, intake: Intake, error: ApiError) -> HttpResponse:
        if not isinstance(error, InvalidRecords):
            return error_response(error)
        body = {
            **error_body(error.code, error.message),
            "count": 0,  # a batch is stored whole or not at all
            "errors": [record_error.as_dict() for record_error in error.errors[:100]],
        }
        return HttpResponse(_encode(body), status=error.status, content_type="application/json", headers=error.headers)

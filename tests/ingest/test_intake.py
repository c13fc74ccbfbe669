"""The shared way in of the clients that do not sign: API token, rate limit, quota, storage."""

from datetime import UTC, datetime

import pytest

from accounts.services import credential_revoke
from ingest.access.tokens import bearer_token, request_admit_unsigned, token_authenticate
from ingest.errors import QuotaExceeded, RateLimited, Unauthorized
from ingest.models import Event
from ingest.storage.schema import batch_of, envelope_make
from ingest.storage.services import events_accept
from tests.conftest import app_keys_create
from tests.ingest.test_limits import keys_on, outcome_totals, tier

pytestmark = pytest.mark.django_db


def envelopes(count: int):
    return [
        envelope_make(
            source="test/1",
            event_type="ping",
            data=b'{"n": %d}' % n,
            timestamp=datetime.now(UTC),
            service_name="svc\x00",
        )
        for n in range(count)
    ]


def test_a_token_finds_its_application_with_or_without_ids_in_the_url(app_keys):
    by_url = token_authenticate(token=app_keys.api_token, org_public_id=app_keys.org_id, app_public_id=app_keys.app_id)
    by_token = token_authenticate(token=app_keys.api_token)

    assert by_url.target.application_id == by_token.target.application_id == app_keys.application.pk


@pytest.mark.parametrize("case", ["missing", "wrong token", "other application", "revoked"])
def test_a_token_that_does_not_belong_is_refused_alike(app_keys, case):
    other = app_keys_create()
    token, app_id = app_keys.api_token, app_keys.app_id
    if case == "missing":
        token = None
    elif case == "wrong token":
        token = "tk_" + "0" * 32
    elif case == "other application":
        token = other.api_token
    else:
        credential_revoke(credential=app_keys.application.credentials.get())

    with pytest.raises(Unauthorized):
        token_authenticate(token=token, org_public_id=app_keys.org_id, app_public_id=app_id)


def test_bearer_header_comes_before_the_client_specific_one():
    assert bearer_token({"HTTP_AUTHORIZATION": "Bearer tk_a", "HTTP_X_API_KEY": "tk_b"}, "HTTP_X_API_KEY") == "tk_a"
    assert bearer_token({"HTTP_X_API_KEY": " tk_b "}, "HTTP_X_API_KEY") == "tk_b"
    assert bearer_token({"HTTP_AUTHORIZATION": "Basic abc"}) is None


def test_rate_limit_applies_to_unsigned_requests_with_retry_after():
    keys = keys_on(tier(requests_per_minute=2))
    target = token_authenticate(token=keys.api_token).target
    request_admit_unsigned(target=target, events=1)
    request_admit_unsigned(target=target, events=1)

    with pytest.raises(RateLimited) as refused:
        request_admit_unsigned(target=target, events=4)

    assert int(refused.value.headers["Retry-After"]) <= 60
    assert outcome_totals(keys)["rate_limited"] == 4


def test_events_beyond_the_quota_are_refused_one_by_one_and_the_rest_stored():
    keys = keys_on(tier(monthly_event_quota=3))
    target = token_authenticate(token=keys.api_token).target

    accepted = events_accept(target=target, checked=batch_of(envelopes(5)), reserved=None)

    assert (accepted.stored, accepted.granted) == (3, 3)
    assert [(error.index, error.error) for error in accepted.errors] == [(3, "over_quota"), (4, "over_quota")]
    stored = Event.objects.filter(application=keys.application)
    assert stored.count() == 3
    assert {event.service_name for event in stored} == {"svc"}
    with pytest.raises(QuotaExceeded):
        request_admit_unsigned(target=target, events=1)

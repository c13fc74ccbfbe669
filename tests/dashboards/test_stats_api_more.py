"""The stats API beyond the events of one application: the rate limit per read token."""

import pytest

from accounts.services import read_token_issue
from tests.conftest import app_keys_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def keys():
    return app_keys_create()


def get(client, path: str, token: str, **params):
    return client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {token}")


def events_path(keys) -> str:
    return f"/v1/stats/{keys.org_id}/{keys.app_id}/events"


def token_for(keys, **options) -> str:
    return read_token_issue(organization=keys.application.organization, **options).token


# --- rate limit --------------------------------------------------------------------------------

def test_an_answer_carries_the_tokens_rate_limit_headers(client, keys, settings):
    settings.READ_API_REQUESTS_PER_MINUTE = 60

    response = get(client, events_path(keys), token_for(keys))

    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "60"
    assert response["RateLimit-Remaining"] == "59"
    assert 1 <= int(response["RateLimit-Reset"]) <= 60


def test_past_the_limit_a_token_gets_429_with_retry_after(client, keys, settings):
    settings.READ_API_REQUESTS_PER_MINUTE = 3
    token = token_for(keys)
    answers = [get(client, events_path(keys), token) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer["RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused["RateLimit-Limit"] == "3"
    assert 1 <= int(refused["Retry-After"]) <= 20


def test_each_token_has_its_own_allowance(client, keys, settings):
    settings.READ_API_REQUESTS_PER_MINUTE = 1
    first, second = token_for(keys), token_for(keys)

    get(client, events_path(keys), first)

    assert get(client, events_path(keys), first).status_code == 429
    assert get(client, events_path(keys), second).status_code == 200


def test_requests_for_applications_outside_the_scope_count_against_the_limit(client, keys, settings):
    settings.READ_API_REQUESTS_PER_MINUTE = 1
    token = token_for(keys)
    theirs = app_keys_create()

    assert get(client, events_path(theirs), token).status_code == 404
    assert get(client, events_path(keys), token).status_code == 429

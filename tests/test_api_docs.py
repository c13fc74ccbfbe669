"""The API documents itself: the OpenAPI schema, the docs page, and CORS on the ingest routes."""

import http.client
import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client, override_settings
from openapi_spec_validator import validate

from accounts.services import credential_issue, read_token_issue
from ingest.rollups.services import tracked_property_create
from tests.conftest import batch_body, signed_headers
from tests.factories import ApplicationFactory
from tests.server import running_server

pytestmark = pytest.mark.django_db

INGEST = "/v1/ingest/{org_id}/{app_id}"
LAMBDA = "/v1/lambda/{org_id}/{app_id}"
OTLP = [f"/v1/otlp/{{org_id}}/{{app_id}}/v1/{signal}" for signal in ("traces", "metrics", "logs")]
MALTI = "/api/v1/ingest"
STATS_EVENTS = "/v1/stats/{org_id}/{app_id}/events"
STATS = [
    f"/v1/stats/{{org_id}}{app}/{what}" for app in ("/{app_id}", "") for what in ("events", "breakdown", "outcomes")
] + [f"/v1/stats/{{org_id}}/{{app_id}}/{what}" for what in ("lambda", "api", "users", "versions")]
STATS_PROPERTY = "/v1/stats/{org_id}/{app_id}/properties/{event_type}/{path}"
ORIGIN = "https://app.example.com"
SIGNING_HEADERS = "content-type,x-signature,x-timestamp,x-nonce,x-batch-size,x-sdk-version,x-schema-version"


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return json.loads(response.content)


def ingest_operation(schema: dict) -> dict:
    return schema["paths"][INGEST]["post"]


def examples(content: dict) -> dict:
    return {name: example["value"] for name, example in content["application/json"]["examples"].items()}


# --- the schema --------------------------------------------------------------------------------


def test_schema_is_valid_openapi_3(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_schema_generates_without_a_warning(tmp_path):
    # A warning means drf-spectacular guessed at something (a new view without annotations, say).
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))

    assert "/v1/ingest/{org_id}/{app_id}:" in (tmp_path / "schema.yaml").read_text()


def test_schema_in_yaml_is_the_default_answer(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert b"/v1/ingest/{org_id}/{app_id}:" in response.content


def test_schema_lists_the_machine_routes_and_no_pages(schema):
    assert set(schema["paths"]) == {
        INGEST,
        "/v1/streams/{org_id}/{app_id}",
        LAMBDA,
        *OTLP,
        MALTI,
        *STATS,
        STATS_PROPERTY,
        "/health",
        "/ready",
        "/metrics",
    }


def test_schema_documents_the_lambda_and_otlp_endpoints_with_their_token(schema, app_keys, client):
    for path in (LAMBDA, *OTLP):
        assert schema["paths"][path]["post"]["security"] == [{"apiToken": []}]
    for status in ("200", "400", "401", "413", "415", "429", "503"):
        assert set(schema["paths"][OTLP[0]]["post"]["responses"][status]["content"]) == {
            "application/json",
            "application/x-protobuf",
        }
    example = examples(schema["paths"][LAMBDA]["post"]["requestBody"]["content"])["Array"]

    response = client.post(
        LAMBDA.format(org_id=app_keys.org_id, app_id=app_keys.app_id) + "?function=f",
        data=json.dumps(example),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {app_keys.api_token}",
    )

    assert response.status_code == 200
    assert response.json()["accepted"] == len(example)


def test_schema_documents_every_answer_of_the_ingest_endpoint(schema):
    responses = ingest_operation(schema)["responses"]

    assert set(responses) == {"200", "204", "207", "400", "401", "413", "422", "429", "503"}
    assert "content" not in responses["204"]
    for status in ("400", "401", "413", "429", "503"):
        content = responses[status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}
        assert {example["error"]["code"] for example in examples(responses[status]["content"]).values()}
    assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
        responses["429"]["headers"]
    )
    assert "Retry-After" in responses["503"]["headers"]
    assert "RateLimit-Remaining" in responses["200"]["headers"]


def test_schema_documents_the_signing_headers_and_the_optional_token(schema):
    operation = ingest_operation(schema)
    headers = {parameter["name"]: parameter for parameter in operation["parameters"] if parameter["in"] == "header"}

    assert set(headers) == {
        "X-Signature",
        "X-Timestamp",
        "X-Nonce",
        "X-Batch-Size",
        "X-SDK-Version",
        "X-Schema-Version",
        "DNT",
    }
    assert [name for name, header in headers.items() if header.get("required")] == [
        "X-Nonce",
        "X-Signature",
        "X-Timestamp",
    ]
    assert operation["security"] == [{}, {"applicationToken": []}]
    assert schema["components"]["securitySchemes"]["applicationToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Optional: when sent, must be the application's API token (`tk_…`).",
    }


def test_schema_describes_the_event_as_the_sdk_sends_it(schema):
    event = schema["components"]["schemas"]["Event"]

    assert set(event["required"]) == {"schema_version", "timestamp", "user_id", "service", "event"}
    assert {"event_id", "id", "session_id", "metadata"} <= set(event["properties"])


@pytest.mark.parametrize(("example", "status"), [("Success", "200"), ("Partial", "207"), ("Rejected", "422")])
def test_documented_request_example_gets_the_documented_answer(schema, app_keys, client, example, status):
    operation = ingest_operation(schema)
    body = batch_body(examples(operation["requestBody"]["content"])[example]["events"])

    response = client.post(app_keys.url, data=body, content_type="application/json", **signed_headers(app_keys, body))

    assert str(response.status_code) == status
    assert response.json() == examples(operation["responses"][status]["content"])[example]


def test_documented_batch_size_error_is_the_real_answer(schema, app_keys, client):
    operation = ingest_operation(schema)
    body = batch_body(examples(operation["requestBody"]["content"])["Success"]["events"])

    response = client.post(
        app_keys.url, data=body, content_type="application/json", **signed_headers(app_keys, body, batch_size=3)
    )

    assert response.status_code == 400
    assert response.json() == examples(operation["responses"]["400"]["content"])["BatchSizeMismatch"]


def test_documented_replay_error_is_the_real_answer(schema, app_keys, client):
    body = batch_body([])
    headers = signed_headers(app_keys, body)
    client.post(app_keys.url, data=body, content_type="application/json", **headers)

    replay = client.post(app_keys.url, data=body, content_type="application/json", **headers)

    assert replay.status_code == 401
    assert replay.json() == examples(ingest_operation(schema)["responses"]["401"]["content"])["ReplayedNonce"]


def malti_post(client, schema, *, service_name="orders-api", key=None, records=None):
    application = ApplicationFactory()
    token = credential_issue(application=application, service_name=service_name).api_token
    if records is None:
        records = examples(schema["paths"][MALTI]["post"]["requestBody"]["content"])["Batch"]["requests"]
    return client.post(
        MALTI,
        data=json.dumps({"requests": records}),
        content_type="application/json",
        HTTP_X_API_KEY=token if key is None else key,
    )


@pytest.mark.parametrize(
    ("status", "example", "options"),
    [
        ("200", "Stored", {}),
        ("403", "OtherService", {"service_name": "billing"}),
        ("401", "BadKey", {"key": "tk_unknown"}),
        ("400", "Empty", {"records": []}),
    ],
)
def test_documented_malti_answers_are_the_real_ones(schema, client, status, example, options):
    response = malti_post(client, schema, **options)

    assert str(response.status_code) == status
    content = schema["paths"][MALTI]["post"]["responses"][status]["content"]
    assert response.json() == examples(content)[example]


def test_schema_documents_the_malti_key_and_every_answer(schema):
    operation = schema["paths"][MALTI]["post"]

    assert operation["security"] == [{"maltiKey": []}]
    assert schema["components"]["securitySchemes"]["maltiKey"]["name"] == "X-API-Key"
    assert set(operation["responses"]) == {"200", "400", "401", "403", "413", "422", "429", "503"}
    assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_documented_health_and_readiness_answers_have_the_real_fields(schema, client):
    for path in ("/health", "/ready"):
        documented = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["example"]

        assert set(client.get(path).json()) == set(documented)


# --- the docs page -----------------------------------------------------------------------------


def test_schema_documents_the_stats_events_endpoint_with_its_read_token(schema):
    operation = schema["paths"][STATS_EVENTS]["get"]

    assert operation["security"] == [{"readToken": []}]
    assert schema["components"]["securitySchemes"]["readToken"]["scheme"] == "bearer"
    assert {"200", "304", "400", "401", "404"} <= set(operation["responses"])
    assert {parameter["name"] for parameter in operation["parameters"]} >= {"since", "until", "interval", "type"}


@pytest.mark.parametrize(
    ("status", "example", "params", "authorized"),
    [
        ("400", "InvalidInterval", {"interval": "week"}, True),
        ("400", "SinceAfterUntil", {"since": "2026-11-20T11:00:00Z", "until": "2026-11-20T08:00:00Z"}, True),
        (
            "400",
            "RangeTooLarge",
            {"since": "2026-11-01T00:00:00Z", "until": "2026-11-20T00:00:00Z", "interval": "minute"},
            True,
        ),
        ("401", "NoToken", {}, False),
    ],
)
def test_documented_stats_errors_are_the_real_answers(schema, client, status, example, params, authorized):
    application = ApplicationFactory()
    headers = (
        {"HTTP_AUTHORIZATION": "Bearer " + read_token_issue(organization=application.organization).token}
        if authorized
        else {}
    )

    response = client.get(
        f"/v1/stats/{application.organization.public_id}/{application.public_id}/events", params, **headers
    )

    content = schema["paths"][STATS_EVENTS]["get"]["responses"][status]["content"]
    assert str(response.status_code) == status
    assert response.json() == examples(content)[example]


@pytest.mark.parametrize("path", STATS)
def test_schema_documents_every_stats_route_with_its_token_and_rate_limit(schema, path):
    operation = schema["paths"][path]["get"]

    assert operation["security"] == [{"readToken": []}]
    assert {"200", "304", "400", "401", "404", "429"} <= set(operation["responses"])
    assert ("app_id" in {parameter["name"] for parameter in operation["parameters"]}) == ("{app_id}" in path)
    assert "RateLimit-Remaining" in operation["responses"]["200"]["headers"]
    assert "Retry-After" in operation["responses"]["429"]["headers"]


@pytest.mark.parametrize(
    ("what", "status", "example", "params", "organization_wide"),
    [
        ("breakdown", "400", "InvalidDimension", {"by": "colour"}, False),
        ("breakdown", "400", "InvalidLimit", {"by": "type", "limit": "500"}, True),
        ("outcomes", "400", "ByMinute", {"interval": "minute"}, False),
        ("outcomes", "404", "NotFound", {}, True),
        ("events", "404", "NotFound", {}, False),
        ("lambda", "400", "ByMinute", {"interval": "minute"}, False),
        ("api", "400", "ByDay", {"interval": "day"}, False),
        ("api", "400", "InvalidDimension", {"by": "colour"}, False),
        ("lambda", "404", "NotFound", {}, False),
        ("users", "400", "ByHour", {"interval": "hour"}, False),
        ("users", "404", "NotFound", {}, False),
        ("versions", "400", "InvalidDimension", {"of": "os"}, False),
        (
            "versions",
            "400",
            "RangeTooLarge",
            {"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            False,
        ),
    ],
)
def test_documented_stats_errors_of_every_route_are_the_real_answers(
    schema, client, what, status, example, params, organization_wide
):
    application = ApplicationFactory()
    token = read_token_issue(organization=application.organization).token
    org_id = "org_elsewhere" if status == "404" else application.organization.public_id
    path = f"/v1/stats/{org_id}" + ("" if organization_wide else f"/{application.public_id}") + f"/{what}"

    response = client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {token}")

    documented = "/v1/stats/{org_id}" + ("" if organization_wide else "/{app_id}") + f"/{what}"
    content = schema["paths"][documented]["get"]["responses"][status]["content"]
    assert str(response.status_code) == status
    assert response.json() == examples(content)[example]


@pytest.mark.parametrize(
    ("what", "example", "params"),
    [
        ("breakdown", "ByType", {"by": "type"}),
        ("outcomes", "TwoDays", {"interval": "day"}),
        ("lambda", "TwoHours", {}),
        ("api", "TwoHours", {}),
        ("users", "TwoDays", {}),
        ("versions", "AWeek", {}),
    ],
)
def test_documented_stats_answers_have_the_real_fields(schema, client, what, example, params):
    application = ApplicationFactory()
    token = read_token_issue(organization=application.organization).token
    documented = examples(
        schema["paths"][f"/v1/stats/{{org_id}}/{{app_id}}/{what}"]["get"]["responses"]["200"]["content"]
    )[example]

    real = client.get(
        f"/v1/stats/{application.organization.public_id}/{application.public_id}/{what}",
        {"since": documented["since"], "until": documented["until"], **params},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    ).json()

    assert set(real) == set(documented)
    assert {k: real[k] for k in ("since", "until")} == {k: documented[k] for k in ("since", "until")}
    if what == "outcomes":
        assert [set(point) for point in real["series"]] == [set(point) for point in documented["series"]]
        assert set(real["totals"]) == set(documented["totals"])
    elif what == "users":
        assert [(point["time"], set(point)) for point in real["series"]] == [
            (point["time"], set(point)) for point in documented["series"]
        ]
    elif what == "versions":
        assert real["of"] == documented["of"]
    elif what in ("lambda", "api"):
        assert [(point["time"], set(point)) for point in real["series"]] == [
            (point["time"], set(point)) for point in documented["series"]
        ]
        assert set(real["total"]) == set(documented["total"])
    else:
        assert real["previous_since"] == documented["previous_since"]


@pytest.mark.parametrize(("example", "path", "kind"), [("AText", "data.command", "text"), ("ANumber", "n", "number")])
def test_documented_property_answers_have_the_real_fields(schema, client, example, path, kind):
    application = ApplicationFactory()
    tracked_property_create(application=application, event_type="command", path=path, kind=kind)
    token = read_token_issue(organization=application.organization).token
    documented = examples(schema["paths"][STATS_PROPERTY]["get"]["responses"]["200"]["content"])[example]

    response = client.get(
        f"/v1/stats/{application.organization.public_id}/{application.public_id}/properties/command/{path}",
        {"since": documented["since"], "until": documented["until"]},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert response.status_code == 200
    assert set(response.json()) == set(documented)
    assert response.json()["kind"] == documented["kind"]


def test_documented_stats_series_has_the_real_answers_shape(schema, client):
    application = ApplicationFactory()
    token = read_token_issue(organization=application.organization).token
    documented = examples(schema["paths"][STATS_EVENTS]["get"]["responses"]["200"]["content"])["ThreeHours"]

    response = client.get(
        f"/v1/stats/{application.organization.public_id}/{application.public_id}/events",
        {"since": documented["since"], "until": documented["until"], "interval": "hour"},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    real = response.json()
    assert set(real) == set(documented)
    assert [point["time"] for point in real["series"]] == [point["time"] for point in documented["series"]]
    assert {k: real[k] for k in ("interval", "since", "until")} == {
        k: documented[k] for k in ("interval", "since", "until")
    }


def test_docs_page_loads_swagger_ui_from_local_static_files_only(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-schema-url="/api/schema/?format=json"' in page
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assets = [reference for reference in references if not reference.startswith("/api/schema/")]
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets
    assert all(asset.startswith("/static/") for asset in assets), assets
    for asset in assets:
        assert finders.find(asset.removeprefix("/static/")), asset


def test_docs_page_has_no_inline_script(client):
    page = client.get("/api/docs/").content.decode()

    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)
    assert len(scripts) == 2
    assert all('src="/static/' in attributes and not body.strip() for attributes, body in scripts)
    assert not re.search(r"\son[a-z]+=", page)


def test_swagger_ui_licence_ships_with_it():
    licence = finders.find("drf_spectacular_sidecar/swagger-ui-dist/LICENSE")

    assert licence and "Apache License" in open(licence).read()


# --- CORS on the ingest routes -----------------------------------------------------------------


def preflight(client, url, origin=ORIGIN):
    return client.options(
        url,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=SIGNING_HEADERS,
    )


def cors_headers(response) -> dict:
    return {
        name.lower(): value for name, value in response.headers.items() if name.lower().startswith("access-control")
    }


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_preflight_from_an_allowed_origin_may_send_the_signing_headers(app_keys):
    response = preflight(Client(), app_keys.url)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert set(response["Access-Control-Allow-Headers"].split(", ")) >= set(SIGNING_HEADERS.split(","))
    assert "POST" in response["Access-Control-Allow-Methods"].split(", ")


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_signed_post_from_an_allowed_origin_can_read_the_answer_and_the_limits(app_keys, signed_post):
    response = signed_post(app_keys, [], HTTP_ORIGIN=ORIGIN)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "RateLimit-Remaining" in response["Access-Control-Expose-Headers"]
    assert "Retry-After" in response["Access-Control-Expose-Headers"]


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_preflight_from_another_origin_gets_no_allow_headers(app_keys):
    response = preflight(Client(), app_keys.url, origin="https://evil.example.net")

    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Headers" not in response


@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_cors_applies_to_the_ingest_routes_only():
    client = Client()

    for path in ("/health", "/api/schema/"):
        assert cors_headers(client.get(path, HTTP_ORIGIN=ORIGIN)) == {}


@override_settings(CORS_ALLOWED_ORIGINS=[])
def test_without_allowed_origins_no_cors_header_is_added(app_keys, signed_post):
    answers = [preflight(Client(), app_keys.url), signed_post(app_keys, [], HTTP_ORIGIN=ORIGIN)]

    assert [cors_headers(answer) for answer in answers] == [{}, {}]
    assert all("Origin" not in answer.get("Vary", "") for answer in answers)


def test_production_server_answers_a_preflight_on_its_machine_route_chain(tmp_path):
    url = "/v1/ingest/org_x/app_00000000"
    with running_server(tmp_path, DATABASE_URL="", REDIS_URL="", APP_CORS__ALLOWED_ORIGINS=ORIGIN) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(
            "OPTIONS",
            url,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": SIGNING_HEADERS,
            },
        )
        response = conn.getresponse()

    assert response.status == 200
    assert response.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert "x-signature" in response.getheader("Access-Control-Allow-Headers")
    assert response.getheader("X-Clacks-Overhead") == "GNU Terry Pratchett"

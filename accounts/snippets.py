"""Ready-to-paste examples of sending a signed batch, shown when credentials are issued."""

from dataclasses import dataclass

_CURL = r"""SECRET='{hmac_secret}'
NONCE=$(python3 -c 'import uuid; print(uuid.uuid4())'); TS=$(date +%s)
BODY='{{"events":[{{"event_id":"'$NONCE'","schema_version":"1.0.0","timestamp":"'$(date -u +%Y-%m-%dT%H:%M:%SZ)'","user_id":"anon_{user}","service":{{"name":"curl-demo","version":"1.0.0"}},"event":{{"type":"command","category":"demo","data":{{"hello":"world"}}}}}}]}}'
SIG=$(printf '%s' "$TS:$NONCE:$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
curl -sS -X POST '{ingest_url}' \
  -H 'Content-Type: application/json' -H "X-Signature: $SIG" -H "X-Timestamp: $TS" \
  -H "X-Nonce: $NONCE" -H 'X-Batch-Size: 1' -H 'X-SDK-Version: curl/1.0' -H 'X-Schema-Version: 1.0.0' \
  -H 'Authorization: Bearer {api_token}' \
  -d "$BODY"
"""

_RUST = """use telemetry_kit::prelude::*;

let telemetry = TelemetryKit::builder()
    .service_name("my-app")?
    .service_version(env!("CARGO_PKG_VERSION"))
    .endpoint("{endpoint}")?
    .with_sync_credentials(
        "{org_id}",
        "{app_id}",  // TK_APP_ID
        "{api_token}",  // TK_TOKEN
        "{hmac_secret}",  // TK_SECRET
    )?
    .auto_sync(true)
    .build()?;
"""

_PYTHON = """import hashlib, hmac, json, time, uuid, urllib.request

INGEST_URL = "{ingest_url}"
SECRET = "{hmac_secret}"  # keep it out of source control: read it from the environment

def send(events):
    body = json.dumps({{"events": events}}).encode()
    timestamp, nonce = str(int(time.time())), str(uuid.uuid4())
    signature = hmac.new(SECRET.encode(), f"{{timestamp}}:{{nonce}}:".encode() + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(INGEST_URL, data=body, method="POST", headers={{
        "Content-Type": "application/json", "X-Signature": signature, "X-Timestamp": timestamp,
        "X-Nonce": nonce, "X-Batch-Size": str(len(events)), "X-SDK-Version": "python-example/1.0",
    }})
    return json.load(urllib.request.urlopen(request))

print(send([{{
    "event_id": str(uuid.uuid4()), "schema_version": "1.0.0",
    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "user_id": "anon_" + hashlib.sha256(b"this machine").hexdigest(),
    "service": {{"name": "my-app", "version": "1.0.0", "language": "python"}},
    "event": {{"type": "command", "category": "demo", "data": {{"hello": "world"}}}},
}}]))
"""

_ENV = """TK_ORG_ID={org_id}
TK_APP_ID={app_id}
TK_TOKEN={api_token}
TK_SECRET={hmac_secret}
TK_ENDPOINT={endpoint}
"""


_MALTI = """MALTI_URL={endpoint}
MALTI_API_KEY={api_token}
MALTI_SERVICE_NAME={service_name}
"""


@dataclass(frozen=True)
class Snippet:
    key: str
    label: str
    code: str


def curl_snippet(*, ingest_url: str, api_token: str, hmac_secret: str, **_) -> str:
    return _CURL.format(ingest_url=ingest_url, api_token=api_token, hmac_secret=hmac_secret, user="0" * 64)


def all_snippets(
    *,
    org_id: str,
    app_id: str,
    api_token: str,
    hmac_secret: str,
    ingest_url: str,
    endpoint: str,
    service_name: str = "",
) -> list[Snippet]:
    """The examples for a freshly issued credential, most likely client first (a Malti key's: Malti)."""
    values = {
        "org_id": org_id,
        "app_id": app_id,
        "api_token": api_token,
        "hmac_secret": hmac_secret,
        "ingest_url": ingest_url,
        "endpoint": endpoint,
        "service_name": service_name,
    }
    malti = [Snippet("malti", "Malti", _MALTI.format(**values))] if service_name else []
    return malti + [
        Snippet("rust", "Rust SDK", _RUST.format(**values)),
        Snippet("env", "Environment", _ENV.format(**values)),
        Snippet("python", "Python", _PYTHON.format(**values)),
        Snippet("curl", "curl", curl_snippet(**values)),
    ]

"""Ready-to-paste examples of sending a signed batch, shown when credentials are issued."""

_CURL = r"""SECRET='{secret}'
NONCE=$(python3 -c 'import uuid; print(uuid.uuid4())'); TS=$(date +%s)
BODY='{{"events":[{{"event_id":"'$NONCE'","schema_version":"1.0.0","timestamp":"'$(date -u +%Y-%m-%dT%H:%M:%SZ)'","user_id":"anon_{user}","service":{{"name":"curl-demo","version":"1.0.0"}},"event":{{"type":"command","category":"demo","data":{{"hello":"world"}}}}}}]}}'
SIG=$(printf '%s' "$TS:$NONCE:$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
curl -sS -X POST '{url}' \
  -H 'Content-Type: application/json' -H "X-Signature: $SIG" -H "X-Timestamp: $TS" \
  -H "X-Nonce: $NONCE" -H 'X-Batch-Size: 1' -H 'X-SDK-Version: curl/1.0' -H 'X-Schema-Version: 1.0.0' \
  -H 'Authorization: Bearer {token}' \
  -d "$BODY"
"""


def curl_snippet(*, ingest_url: str, api_token: str, hmac_secret: str) -> str:
    return _CURL.format(url=ingest_url, token=api_token, secret=hmac_secret, user="0" * 64)

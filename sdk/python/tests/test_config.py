"""Settings from code and from the environment."""

from telemetry_kit.config import Config

ENVIRONMENT = {
    "TK_ENDPOINT": "https://telemetry.example.com/",
    "TK_ORG_ID": "org_abc",
    "TK_APP_ID": "app_e963188b",
    "TK_TOKEN": "tk_" + "8" * 32,
    "TK_SECRET": "kIRV9eC/2+Dvqc4E9ubP9Cjzd0LG2/Dg0OVEfknKBPQ=",
}


def test_settings_are_read_from_tk_variables():
    config = Config.from_env(ENVIRONMENT, service_name="my-app")

    assert (config.org_id, config.app_id, config.token, config.secret) == (
        "org_abc",
        "app_e963188b",
        "tk_" + "8" * 32,
        "kIRV9eC/2+Dvqc4E9ubP9Cjzd0LG2/Dg0OVEfknKBPQ=",
    )
    assert config.ingest_url == "https://telemetry.example.com/v1/ingest/org_abc/app_e963188b"
    assert config.problems() == []


def test_settings_given_in_code_win_over_the_environment():
    config = Config.from_env(ENVIRONMENT, app_id="app_00000001", token=None)

    assert config.app_id == "app_00000001"
    assert config.token == ENVIRONMENT["TK_TOKEN"]  # None means "not given here"


def test_do_not_track_in_the_environment_wins_over_code():
    for value in ("1", "true", "YES"):
        assert Config.from_env({**ENVIRONMENT, "DO_NOT_TRACK": value}, do_not_track=False).do_not_track
    assert not Config.from_env({**ENVIRONMENT, "DO_NOT_TRACK": "0"}).do_not_track


def test_missing_settings_are_named_with_their_variables():
    problems = Config.from_env({"TK_ENDPOINT": "telemetry.example.com"}).problems()

    assert problems[:4] == [
        "org_id is not set (TK_ORG_ID)",
        "app_id is not set (TK_APP_ID)",
        "secret is not set (TK_SECRET)",
        "endpoint must be an http:// or https:// URL (TK_ENDPOINT)",
    ]


def test_batch_size_beyond_the_servers_limit_is_a_problem():
    assert Config.from_env(ENVIRONMENT, batch_size=1001).problems() == ["batch_size must be between 1 and 1000"]


def test_default_queue_is_a_file_per_application(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr("sys.platform", "linux")

    assert Config.from_env(ENVIRONMENT).queue_file() == tmp_path / "telemetry-kit" / "org_abc-app_e963188b.sqlite3"


def test_repr_hides_the_secret_and_the_token():
    config = Config.from_env(ENVIRONMENT)

    shown = repr(config)

    assert ENVIRONMENT["TK_SECRET"] not in shown and ENVIRONMENT["TK_TOKEN"] not in shown
    assert "org_abc" in shown  # the rest is still there to debug with


def test_plain_http_to_a_remote_host_is_a_problem():
    for endpoint in (
        "http://telemetry.example.com",
        "http://10.0.0.5:8000",
        "HTTP://[2001:db8::1]/",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
    ):
        problems = Config.from_env({**ENVIRONMENT, "TK_ENDPOINT": endpoint}).problems()

        assert problems == [
            "endpoint must be an https:// URL: http:// sends events in the clear, so it is "
            "allowed only to localhost, 127.0.0.0/8 and ::1, or with allow_insecure_http "
            "(TK_ALLOW_INSECURE_HTTP=1)"
        ], endpoint


def test_plain_http_to_a_loopback_host_is_allowed():
    for endpoint in (
        "http://localhost:8000",
        "http://LOCALHOST",
        "http://127.0.0.1:8000",
        "http://127.8.9.10",
        "http://[::1]:8000/",
    ):
        assert Config.from_env({**ENVIRONMENT, "TK_ENDPOINT": endpoint}).problems() == [], endpoint


def test_plain_http_to_a_remote_host_may_be_allowed_explicitly():
    in_code = Config.from_env({**ENVIRONMENT, "TK_ENDPOINT": "http://telemetry.internal"}, allow_insecure_http=True)
    by_environment = Config.from_env(
        {**ENVIRONMENT, "TK_ENDPOINT": "http://telemetry.internal", "TK_ALLOW_INSECURE_HTTP": "1"}
    )

    assert in_code.problems() == [] and by_environment.problems() == []

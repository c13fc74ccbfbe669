"""How a stream's bytes become values: ``values_read`` over an HTTP body read in pieces, and
``Message.of`` for a WebSocket message. Pure functions: no database."""

import io
import json
import tracemalloc

import pytest

from ingest.families.streams import READ_SIZE, Message, StreamStopped, values_read


def read_all(
    body: bytes, *, max_value_bytes: int = 1 << 20, max_body_bytes: int = 1 << 30, read_size: int | None = None
) -> tuple[list[bytes], StreamStopped | None]:
    """The raw values ``values_read`` yields for ``body``, and the stop it raised (if any)."""
    stream = io.BytesIO(body)
    read = stream.read if read_size is None else (lambda size: stream.read(min(size, read_size)))
    values, stop = [], None
    try:
        for group in values_read(read, max_value_bytes=max_value_bytes, max_body_bytes=max_body_bytes):
            values.extend(raw for raw, _ in group)
    except StreamStopped as stopped:
        stop = stopped
    return values, stop


def decoded(values: list[bytes]) -> list:
    return [json.loads(raw) for raw in values]


def test_brackets_and_escaped_quotes_inside_strings_do_not_end_a_value_spanning_lines():
    body = b'{\n  "a": "]}\\"[",\n  "b": "\\\\",\n  "c": [1,\n 2]\n}\n{"d": 4}\n'

    values, stop = read_all(body)

    assert stop is None
    assert decoded(values) == [{"a": ']}"[', "b": "\\", "c": [1, 2]}, {"d": 4}]


def test_values_before_and_after_a_value_spanning_lines_share_its_lines():
    values, stop = read_all(b'{"a": 1} [\n2,\n3] {"b":\n 4} "t"\n')

    assert stop is None
    assert decoded(values) == [{"a": 1}, [2, 3], {"b": 4}, "t"]


def test_a_line_of_many_concatenated_values_is_split_into_each():
    values, stop = read_all(b'{"n": 0}' * 20_000 + b"\n")

    assert stop is None
    assert len(values) == 20_000 and decoded(values[:2]) == [{"n": 0}, {"n": 0}]


def test_values_cut_across_reads_are_whole():
    lines = [json.dumps({"n": n, "pad": "x" * (n % 50)}).encode() for n in range(500)]

    values, stop = read_all(b"\n".join(lines), read_size=7)

    assert stop is None
    assert values == lines


@pytest.mark.parametrize(
    "body, code",
    [
        (b'{"a": 1}\n{"b": [1, 2}\n', "invalid_json"),
        (b'{"a": 1}\n]\n', "invalid_json"),
        (b'{"a": 1}\n{"b": "open\n"}\n', "invalid_json"),
        (b'{"a": 1}\n[[[\n', "invalid_json"),
        (b'{"a": 1}\n' + b"[" * 50_000 + b"]" * 50_000 + b"\n", "invalid_json"),
        (b'{"a": 1}\n' + b"[\n" * 50_000 + b"]\n" * 50_000, "invalid_json"),
    ],
)
def test_a_stop_keeps_the_values_before_it(body, code):
    values, stop = read_all(body)

    assert stop is not None and stop.code == code
    assert decoded(values) == [{"a": 1}]


def test_a_value_spanning_lines_past_the_value_limit_stops_the_stream():
    values, stop = read_all(b'{"a": 1}\n[\n' + b"1,\n" * 1000, max_value_bytes=1024)

    assert stop is not None and stop.code == "payload_too_large"
    assert decoded(values) == [{"a": 1}]


@pytest.mark.parametrize("extra", [0, 1, 50, READ_SIZE])
def test_a_body_is_read_up_to_its_limit_and_no_further(extra):
    line = b'{"pad": "%s"}\n' % (b"x" * 88)  # 100 bytes
    limit = 10_000

    values, stop = read_all(line * (limit // len(line)) + b" " * extra, max_body_bytes=limit)

    assert len(values) == limit // len(line)
    assert (stop is None) == (extra == 0)
    if extra:
        assert stop.code == "payload_too_large"


def test_a_websocket_message_is_checked_without_building_its_objects():
    message = b"[" + b"[]," * 350_000 + b"[]]"  # about 1 MB; decoded, some 20 MB of lists
    tracemalloc.start()
    try:
        checked = Message.of(message)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert checked.raw == message and checked.fields is None
    assert peak < 3 * len(message)  # the message's bytes and their UTF-8 check, nothing per item


@pytest.mark.parametrize(
    "payload, raw",
    [
        ('{"type": "metric", "level": "INFO"}', b'{"type": "metric", "level": "INFO"}'),
        ("plain text", b'"plain text"'),
        (b"\xff\xfe", b'{"base64":"//4="}'),
        ('{"a": 1}{"b": 2}', b'"{\\"a\\": 1}{\\"b\\": 2}"'),
        ("[" * 5000 + "]" * 5000, json.dumps("[" * 5000 + "]" * 5000).replace(" ", "").encode()),
    ],
)
def test_a_websocket_message_that_is_not_one_json_value_is_kept_as_text(payload, raw):
    assert Message.of(payload).raw == raw

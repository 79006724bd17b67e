"""Redaction rules: each built-in detector, the checks that keep numbers that are not personal
data (Luhn, mod 97, dates), custom patterns, and patterns refused when they are set."""

import time

import pytest

from likeloop_server.errors import InvalidValue
from likeloop_server.redaction import ADVERSARIAL_BUDGET_S, BUILTINS, RedactConfig, Redactor

ALL = Redactor(RedactConfig(BUILTINS, ("(?i)order #[0-9]+",)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail john.doe+x@mail.example.co.uk now", "mail [email] now"),
        ("call +1 (415) 555-0132 today", "call [phone] today"),
        ("or 0044 20 7946 0958", "or [phone]"),
        ("card 4111 1111 1111 1111 ok", "card [card] ok"),
        ("card 5500-0000-0000-0004", "card [card]"),
        ("iban DE89 3704 0044 0532 0130 00.", "iban [iban]."),
        ("GB82WEST12345698765432", "[iban]"),
        ("from 192.168.1.20 and 2001:db8::1", "from [ip] and [ip]"),
        ("full fe80:0:0:0:0:0:0:1", "full [ip]"),
        ("Order #1234 shipped", "[redacted] shipped"),
    ],
)
def test_each_builtin_and_a_custom_pattern_replace_what_they_find(text, expected):
    assert ALL.text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "16 digits failing Luhn 4111 1111 1111 1112",
        "an IBAN with a wrong check DE00 3704 0044 0532 0130 00",
        "on 2026-12-04 at 12:30:45, version 1.2.3, 42 apples in 2026",
        "not an address 999.1.1.1 nor 1.2.3",
    ],
)
def test_what_only_looks_like_personal_data_stays(text):
    assert ALL.text(text) == text


def test_only_the_detectors_a_project_chose_run():
    emails_only = Redactor(RedactConfig(("email",)))
    assert emails_only.text("a@b.io 4111 1111 1111 1111") == "[email] 4111 1111 1111 1111"


def test_an_event_has_every_text_field_redacted_in_place():
    event = {
        "type": "response",
        "prompt": "I am a@b.io",
        "system": "card 4111111111111111",
        "response": "ok 10.0.0.1",
        "messages": [{"role": "user", "content": "+44 20 7946 0958"}],
        "metadata": {"who": "c@d.io", "nested": [{"ip": "10.1.1.1"}], "n": 3},
        "user_id": "a@b.io",
    }
    ALL.event(event)
    assert event["prompt"] == "I am [email]" and event["system"] == "card [card]" and event["response"] == "ok [ip]"
    assert event["messages"][0]["content"] == "[phone]"
    assert event["metadata"] == {"who": "[email]", "nested": [{"ip": "[ip]"}], "n": 3}
    assert event["user_id"] == "a@b.io"  # ids are not text: erasure is how a user id goes


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"patterns": ["(a)\\1"]}, "backreferences"),
        ({"patterns": ["(?=x)y"]}, "lookaround"),
        ({"patterns": ["["]}, "not a valid pattern"),
        ({"patterns": ["a*"]}, "empty text"),
        ({"patterns": ["x" * 501]}, "1-500"),
        ({"patterns": ["a"] * 21}, "at most 20"),
        ({"builtin": ["ssn"]}, "some of email"),
        ({"other": 1}, "an object"),
        ([], "an object"),
    ],
)
def test_bad_settings_are_refused_naming_the_problem(raw, says):
    with pytest.raises(InvalidValue) as refused:
        RedactConfig.parse(raw)
    assert says in str(refused.value)


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|aa)+b", "(x+x+)+y", "(.*a){20}", "([a-z]+)*@"])
def test_patterns_that_backtrack_catastrophically_elsewhere_run_in_linear_time(pattern):
    redactor = Redactor(RedactConfig.parse({"patterns": [pattern]}))
    for text in ("a" * 2000 + "!", "x" * 2000, "ab" * 1000):
        started = time.perf_counter()
        redactor.text(text)
        assert time.perf_counter() - started < ADVERSARIAL_BUDGET_S

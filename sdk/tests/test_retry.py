import random

from likeloop._retry import MAX_DELAY_S, MAX_RETRY_AFTER_S, RetryPolicy, is_retryable, parse_retry_after


def test_retryable_statuses():
    assert is_retryable(None)
    for status in (408, 429, 500, 502, 503, 504):
        assert is_retryable(status)
    for status in (400, 401, 403, 404, 413, 422):
        assert not is_retryable(status)


def test_retry_after_is_honoured_and_capped():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("100000") == MAX_RETRY_AFTER_S
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None
    assert RetryPolicy().delay(1, retry_after=7.0) == 7.0


def test_backoff_grows_with_jitter_and_a_cap():
    policy = RetryPolicy(rng=random.Random(1))
    first = [policy.delay(1) for _ in range(200)]
    tenth = [policy.delay(10) for _ in range(200)]
    assert max(first) <= 0.5
    assert max(tenth) <= MAX_DELAY_S
    assert max(tenth) > 5 * max(first)
    assert len(set(first)) > 100  # jittered, not a fixed schedule

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from otel_distro.scrub import REDACTED, Scrubber

SCRUB = Scrubber(["pin"])


class TestKeys:
    @pytest.mark.parametrize(
        "key",
        ["password", "user_password", "Authorization", "http.request.header.cookie", "set-cookie", "X-Api-Key",
         "api_key", "client_secret", "refresh_token", "sessionid", "credit_card", "pin"],
    )  # fmt: skip
    def test_sensitive(self, key: str) -> None:
        assert SCRUB.value(key, "v") == REDACTED

    @pytest.mark.parametrize("key", ["user", "order_id", "http.route", "status"])
    def test_not_sensitive(self, key: str) -> None:
        assert SCRUB.value(key, "v") == "v"

    def test_nested_and_lists(self) -> None:
        assert SCRUB.mapping({"a": {"password": "p"}, "b": ["token=t", "ok"]}) == {
            "a": {"password": REDACTED},
            "b": [f"token={REDACTED}", "ok"],
        }


class TestText:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("login password=hunter2 ok", f"login password={REDACTED} ok"),
            ('{"token": "abc def", "n": 1}', f'{{"token": {REDACTED}, "n": 1}}'),
            ("Authorization: Bearer abcdefghijkl", f"Authorization: {REDACTED}"),
            ("sent bearer abcdefghijklmnop", f"sent bearer {REDACTED}"),
            ("card 4111 1111 1111 1111 paid", f"card {REDACTED} paid"),
            ("order 1234567890123 ok", "order 1234567890123 ok"),  # fails Luhn: not a card
            ("order 42 created", "order 42 created"),
            ("cannot reach postgres://app:pw@db:5432/x", f"cannot reach postgres://{REDACTED}@db:5432/x"),
            ("see https://example.org/a@b", "see https://example.org/a@b"),
        ],
    )
    def test_values_hidden_keys_kept(self, text: str, expected: str) -> None:
        assert SCRUB.text(text) == expected

    def test_extra_keys_apply_to_text(self) -> None:
        assert SCRUB.text("pin=1234 user=bob") == f"pin={REDACTED} user=bob"


class TestLazyPatterns:
    def test_free_text_patterns_compile_on_first_use_only(self) -> None:
        scrubber = Scrubber(["pin"])
        assert scrubber._patterns is None
        assert scrubber.value("password", "x") == REDACTED  # keys need no free-text pattern
        assert scrubber._patterns is None
        assert scrubber.text("pin=1234") == f"pin={REDACTED}"
        patterns = scrubber._patterns
        assert patterns is not None
        scrubber.text("token=abc")
        assert scrubber._patterns is patterns

    def test_threads_racing_on_first_use_agree(self) -> None:
        scrubber = Scrubber()
        text = "password=hunter2 card 4111 1111 1111 1111 via postgres://app:pw@db/x"
        with ThreadPoolExecutor(8) as pool:
            results = set(pool.map(lambda _: scrubber.text(text), range(64)))
        assert results == {f"password={REDACTED} card {REDACTED} via postgres://{REDACTED}@db/x"}

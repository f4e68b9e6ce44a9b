"""LWM_* numbers: defaults when unset or empty, errors that name the variable."""

from __future__ import annotations

import pytest

from lwm.learnware.settings import env_float, env_int


def test_unset_and_empty_give_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LWM_TEST_NUMBER", raising=False)
    assert env_int("LWM_TEST_NUMBER", 7) == 7
    monkeypatch.setenv("LWM_TEST_NUMBER", " ")
    assert env_float("LWM_TEST_NUMBER", 2.5) == 2.5


def test_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWM_TEST_NUMBER", "12")
    assert env_int("LWM_TEST_NUMBER", 7, minimum=12) == 12
    monkeypatch.setenv("LWM_TEST_NUMBER", "0.25")
    assert env_float("LWM_TEST_NUMBER", 1.0) == 0.25


@pytest.mark.parametrize(
    ("value", "read", "message"),
    [
        ("ten", lambda: env_int("LWM_TEST_NUMBER", 1), "LWM_TEST_NUMBER must be an integer, got 'ten'"),
        ("1.5", lambda: env_int("LWM_TEST_NUMBER", 1), "LWM_TEST_NUMBER must be an integer, got '1.5'"),
        ("soon", lambda: env_float("LWM_TEST_NUMBER", 1.0), "LWM_TEST_NUMBER must be a number, got 'soon'"),
        ("-1", lambda: env_float("LWM_TEST_NUMBER", 1.0, minimum=0), "LWM_TEST_NUMBER must be at least 0, got '-1'"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, value: str, read, message: str) -> None:
    monkeypatch.setenv("LWM_TEST_NUMBER", value)
    with pytest.raises(ValueError) as error:
        read()
    assert str(error.value) == message

"""The read-back check of a critical alert's acknowledgement (pure logic)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.clinical.alerts import read_back_matches

FINDING = "Serum potassium 6.8 mmol/L"


def test_the_same_words_match_whatever_the_case_spacing_and_punctuation() -> None:
    assert read_back_matches(FINDING, FINDING)
    assert read_back_matches(FINDING, "serum potassium 6.8 mmol / L.")
    assert read_back_matches("血钾 6.8 mmol/L", "血钾６．８ｍｍｏｌ／Ｌ")  # full-width forms


def test_a_wrong_number_never_matches() -> None:
    assert not read_back_matches(FINDING, "Serum potassium 5.8 mmol/L")
    assert not read_back_matches(FINDING, "Serum potassium 68 mmol/L")
    assert not read_back_matches("Left pneumothorax 4 cm", "Left pneumothorax")


def test_a_summary_or_nothing_is_not_a_read_back() -> None:
    assert not read_back_matches(FINDING, "ok")
    assert not read_back_matches(FINDING, "")
    assert not read_back_matches(FINDING, "   ")
    assert not read_back_matches("Large left tension pneumothorax with mediastinal shift",
                                 "pneumothorax")


@given(st.text(min_size=1, max_size=200))
def test_repeating_the_finding_always_matches(text: str) -> None:
    if any(ch.isalnum() for ch in text):
        assert read_back_matches(text, text)
        assert read_back_matches(text, f"  {text.upper()}  ") or not text.isascii()

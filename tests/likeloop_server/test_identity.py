import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from likeloop_server.identity import normalise_text, pair_id, prompt_group_id, valid_project_name


def test_project_names_are_lowercase_slugs():
    assert valid_project_name("acme")
    assert valid_project_name("team-1_prod")
    assert not valid_project_name("Acme")
    assert not valid_project_name("-acme")
    assert not valid_project_name("a" * 64)
    assert not valid_project_name("a:b")


def test_normalise_folds_spacing_and_unicode_form():
    assert normalise_text("  What is\n\n 2+2?  ") == "What is 2+2?"
    assert normalise_text("caf\u0065\u0301") == normalise_text("caf\u00e9")


# Whitespace of every kind, and characters NFC composes (e + combining acute) or replaces (Angstrom sign)
TRICKY = " \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000ae\u0301\u00e9\u212b"


@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=30) | st.text())
def test_normalising_is_nfc_with_whitespace_runs_folded_to_one_space(text):
    assert normalise_text(text) == re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def test_same_prompt_modulo_spacing_is_one_group():
    assert prompt_group_id(prompt="What is 2+2?") == prompt_group_id(prompt=" What  is 2+2?\n")


def test_system_prompt_is_part_of_the_identity():
    a = prompt_group_id(prompt="hi", system="be terse")
    b = prompt_group_id(prompt="hi", system="be verbose")
    assert a != b
    assert a != prompt_group_id(prompt="hi")


def test_explicit_prompt_id_wins_over_text():
    assert prompt_group_id(prompt="a", prompt_id="q1") == prompt_group_id(prompt="b", prompt_id="q1")
    assert prompt_group_id(prompt="a", prompt_id="q1") != prompt_group_id(prompt="a", prompt_id="q2")


def test_chat_and_text_forms_are_distinct_groups():
    chat = [{"role": "user", "content": "hi"}]
    assert prompt_group_id(messages=chat) != prompt_group_id(prompt="hi")
    assert prompt_group_id(messages=chat) == prompt_group_id(messages=[{"role": "User", "content": " hi "}])


def test_pair_ids_are_deterministic_and_ordered():
    assert pair_id("g", "a", "b") == pair_id("g", "a", "b")
    assert pair_id("g", "a", "b") != pair_id("g", "b", "a")
    assert len(pair_id("g", "a", "b")) == 32

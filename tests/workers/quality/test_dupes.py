"""Near-duplicate prompts by MinHash: folded copies and small edits are found, different
prompts are not."""

from workers.quality.dupes import near_duplicates, shingles


def test_folding_and_short_texts():
    assert shingles("Hello,   WORLD!") == {b"hello world"}
    assert shingles("one two three four") == {b"one two three", b"two three four"}


def test_near_copies_are_found_and_different_prompts_are_not():
    base = "Summarise the following support ticket in two sentences for the on-call engineer: the login page times out"
    texts = {
        "a": base,
        "b": base.upper() + "  ",  # a folded copy
        "c": base.replace("two sentences", "two  sentences") + ".",  # the same words
        "d": "Write a haiku about the sea at night, with the moon and a small boat on the water",
        "e": "Translate into French: the weather is nice today and we are going to the beach",
    }
    assert near_duplicates(texts) == {"a", "b", "c"}
    assert near_duplicates({"only": base}) == set()

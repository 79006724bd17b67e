"""Near-duplicate prompts by MinHash: folded copies and small edits are found, different
prompts are not."""

from workers.quality.dupes import near_duplicates, shingles


def test_folding_and_short_texts():
    assert shingles("Hello,   WORLD!") == {"hello world"}
    assert shingles("one two three four") == {"one two three", "two three four"}


def test_near_copies_are_found_and_different_prompts_are_not():
    base = "Summarise the following support ticket in two sentences for the on-call engineer: the login page times out"
    texts = {
        "a": base,
        "b": base.upper() + "  ",  # a folded copy
        "c": base.replace("two sentences", "two  sentences") + ".",  # the same words
        "d": "Write a haiku about the sea at night, with the moon and a small boat on the water",
        "e": "Translate into French: the weather is nice today and we are going to the beach",
        # the last word of d changed: 16 of 18 3-grams shared (0.89)
        "f": "Write a haiku about the sea at night, with the moon and a small boat on the lake",
        # the first half of e changed: 6 of 18 shared (0.33)
        "g": "Say it in German, please: the weather is nice today and we are going to the beach",
    }
    assert near_duplicates(texts) == {"a", "b", "c", "d", "f"}
    assert near_duplicates({"only": base}) == set()


def test_many_alike_prompts_are_all_found():
    """A long template with one short slot: every prompt is a near copy (compared one per bucket,
    so thousands of them cost no more than thousands of different prompts)."""
    template = "Use the context below to answer the customer. Context: " + "our store opens at nine every day " * 8
    texts = {f"t{i}": f"{template} Question: what about order {i}?" for i in range(3000)}
    texts["other"] = "Write a haiku about the sea at night, with the moon and a small boat on the water"
    assert near_duplicates(texts) == set(texts) - {"other"}


def test_the_system_prompt_is_not_compared():
    from workers.pairing.population import prompt_text

    system = "You are the support assistant of a shop. Answer briefly and politely, in the customer's language."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Where is my parcel?"}]
    assert prompt_text(None, system, messages) == "Where is my parcel?"
    assert prompt_text("How do refunds work?", system, None) == "How do refunds work?"


def test_signatures_past_memory_go_to_a_file_and_find_the_same(monkeypatch):
    """Past SPOOL_BYTES the signatures live in a temporary file, read a slice of rows at a time
    (here 7 rows a slice, 4 KB in memory): the same rows are found as from bytes in memory."""
    import numpy as np

    from workers.pairing.digest import signatures
    from workers.quality import dupes

    texts = [f"Tell me about topic number {i % 40} in the catalogue, please, with detail {i % 3}" for i in range(120)]
    texts += [f"An unrelated question {i} about {i * 17} things and {i * 31} more" for i in range(60)]
    signed = b"".join(signatures(texts))
    in_memory = dupes.duplicate_rows(signed)
    monkeypatch.setattr(dupes.SignatureFile, "SPOOL_BYTES", 4096)
    monkeypatch.setattr(dupes, "_COMPARE_ROWS", 7)
    held = dupes.SignatureFile()
    for start in range(0, len(signed), 128 * 11):
        held.add(signed[start : start + 128 * 11])
    assert held.rows == 180 and held._file._rolled  # on disk
    on_disk = dupes.duplicate_rows(held)
    assert in_memory[:120].all() and not in_memory[120:].any()
    assert np.array_equal(on_disk, in_memory)
    assert np.array_equal(
        held.rows_of(np.array([0, 8, 179])), np.frombuffer(signed, np.uint8).reshape(180, 128)[[0, 8, 179]]
    )
    held.close()

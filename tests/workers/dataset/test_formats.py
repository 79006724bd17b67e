import json

import orjson
import pyarrow as pa
import pytest

from likeloop_server.stored import record_ids
from workers.dataset.formats import (
    SCHEMAS,
    expand_pair,
    kto_row,
    openai_row,
    split_of,
    stored_pair,
    trl_chat_row,
    trl_row,
)
from workers.dataset.provenance import pair_metadata

TEXT = {
    "id": "p1",
    "group_id": "g1",
    "prompt": "2+2?",
    "system": "Be brief.",
    "messages": None,
    "chosen": "4",
    "rejected": "5",
    "chosen_meta": {"response_id": "a"},
    "rejected_meta": {"response_id": "b"},
    "paired_at": 1.0,
}
CHAT = {
    **TEXT,
    "prompt": None,
    "system": None,
    "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2+2?"},
    ],
}


def test_trl_standard_rows_are_strings():
    row = trl_row(TEXT)
    assert (row["prompt"], row["chosen"], row["rejected"]) == ("2+2?", "4", "5")
    assert json.loads(row["metadata"])["pair_id"] == "p1"


def test_trl_conversational_rows_are_message_lists():
    row = trl_chat_row(TEXT)
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "4"}]
    assert trl_chat_row(CHAT)["prompt"] == CHAT["messages"]


def test_openai_rows_follow_the_dpo_file_format():
    row = openai_row(CHAT)
    assert set(row) == {"input", "preferred_output", "non_preferred_output"}
    assert row["input"]["messages"] == CHAT["messages"]
    assert row["preferred_output"] == [{"role": "assistant", "content": "4"}]
    assert row["non_preferred_output"] == [{"role": "assistant", "content": "5"}]


KTO_ITEM = {**TEXT, "completion": "4", "label": True, "metadata": '{"source": "vote"}'}


@pytest.mark.parametrize(
    "name, build, records",
    [
        ("trl", trl_row, (TEXT, CHAT)),
        ("trl-chat", trl_chat_row, (TEXT, CHAT)),
        ("openai", openai_row, (TEXT, CHAT)),
        ("kto", kto_row, (KTO_ITEM,)),
    ],
)
def test_rows_have_exactly_their_parquet_schemas_columns_and_keep_every_value(name, build, records):
    rows = [build(r) for r in records]
    # pyarrow drops keys a schema lacks and fills the ones a row lacks with nulls: compare both ways
    assert all(list(row) == SCHEMAS[name].names for row in rows)
    table = pa.Table.from_pylist(rows, schema=SCHEMAS[name])
    assert table.to_pylist() == rows
    assert sum(column.null_count for column in table.columns) == 0


def test_the_split_is_stable_and_near_the_ratio():
    groups = [f"group-{i}" for i in range(4000)]
    test = [g for g in groups if split_of(g, 0.2) == "test"]
    assert 0.17 < len(test) / len(groups) < 0.23
    assert [split_of(g, 0.2) for g in groups] == [split_of(g, 0.2) for g in groups]
    assert all(split_of(g, 0.0) == "train" for g in groups)
    # A larger ratio only moves groups from train to test, never back.
    assert set(test) <= {g for g in groups if split_of(g, 0.3) == "test"}


def test_a_stored_pair_is_its_trl_row_and_expands_to_the_same_rows_in_every_format():
    for record in (TEXT, CHAT):
        stored = stored_pair(record)
        assert stored == orjson.dumps(trl_row(record))
        row = orjson.loads(stored)
        assert record_ids(row) == ("p1", "g1")
        expanded = expand_pair(row)
        for build in (trl_row, trl_chat_row, openai_row):
            assert build(expanded) == build(record)


def test_records_stored_before_provenance_was_kept_give_the_same_metadata():
    # TEXT has the older shape (chosen_meta, rejected_meta); pairing now stores the metadata string.
    modern = {**TEXT, "metadata": pair_metadata("p1", "g1", TEXT, {"response_id": "a"}, {"response_id": "b"}, 1.0)}
    assert trl_row(modern)["metadata"] == trl_row(TEXT)["metadata"]
    assert json.loads(trl_row(TEXT)["metadata"])["chosen"] == {"response_id": "a"}

"""The LLM judge against a local OpenAI-compatible server (the real ``openai`` client over HTTP):
judged pairs marked as the judge's, the position-bias guard, people's decisions winning, the
daily budget under two concurrent workers, retries after 429, unparseable replies, exports of
human pairs only by default, and the model's key nowhere but in the environment."""

import json
import logging
import time

import pytest

from likeloop_server import exports, keys, projects
from tests.llm_server import LlmServer
from tests.support import (
    P,
    auth,
    feedback,
    group_members,
    group_pair_ids,
    make_key,
    read_jsonl_gz,
    response,
    store,
    store_and_pair,
    stored_records,
)
from workers.ai.judge import judge_project, parse_verdict
from workers.export.run import export_project
from workers.pairing.drain import drain

SECRET = "sk-test-0123456789-never-store-me"


@pytest.fixture
def llm(monkeypatch):
    server = LlmServer()
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    yield server
    server.close()


def with_judge(conn, llm, **overrides):
    make_key(conn, P)
    config = {"base_url": llm.url, "model": "judge-1", "api_key_env": "JUDGE_KEY", **overrides}
    projects.update_config(conn, P, judge=config)


def group(conn, settings, n, good=None, *extra):
    """A prompt group of two answers, ``good`` of them says it is correct; returns its id."""
    a = f"answer {n} correct" if good == "a" else f"answer {n} one"
    b = f"answer {n} correct" if good == "b" else f"answer {n} two"
    events = [response(f"g{n}a", a, prompt=f"Q{n}"), response(f"g{n}b", b, prompt=f"Q{n}"), *extra]
    store(conn, settings, *events)
    return conn.hget(keys.ProjectKeys(P).response(f"g{n}a"), "group").decode()


def pair(conn):
    """What the pairing job does with the groups the judge made dirty."""
    drain(conn, P, 100, time.monotonic() + 30)


def pairs_of(conn, gid):
    return [
        (r["chosen"], r["rejected"], json.loads(r["metadata"])) for r in stored_records(conn, keys.ProjectKeys(P), gid)
    ]


def test_parse_verdict_is_tolerant_and_strict_about_meaning():
    assert parse_verdict('{"winner": "B", "reason": "x"}') == "B"
    assert parse_verdict('Here you go: {"winner":"tie"}') == "tie"
    assert parse_verdict("a") == "A"
    for bad in (None, "", "maybe", '{"winner": 3}', '{"winner": "C"}'):
        assert parse_verdict(bad) is None


def test_a_judged_pair_is_marked_and_left_out_of_human_exports(conn, s3, settings, llm):
    with_judge(conn, llm)
    gid = group(conn, settings, 1, good="b")
    done = judge_project(conn, P)
    assert (done["pairs"], done["verdicts"], done["calls"], llm.calls) == (1, 1, 2, 2)
    pair(conn)
    ((chosen, rejected, meta),) = pairs_of(conn, gid)
    assert (chosen, rejected) == ("answer 1 correct", "answer 1 one")
    assert (meta["source"], meta["source_model"]) == ("judge", "judge-1")
    # each order's pick is kept beside the verdict: "one" (the lower id) shown first, then second
    (value,) = conn.hvals(keys.ProjectKeys(P).judgements(gid))
    assert value.decode().endswith("|j|BA")
    # the judged answers had no feedback: the verdict keeps them (and their group), as the pair names them
    members = group_members(conn, keys.ProjectKeys(P), gid)
    assert members and [conn.ttl(keys.ProjectKeys(P).response(m)) for m in members] == [-1] * len(members)
    assert conn.ttl(keys.ProjectKeys(P).group(gid)) == -1
    human = export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot")
    assert human["counts"]["pairs"] == 0 and human["plan"]["sources"] == "human"
    everything = export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot", sources="all")
    (f,) = [f for f in everything["files"] if f["kind"] == "pairs"]
    (row,) = read_jsonl_gz(s3, settings.s3_bucket, f["key"])
    assert json.loads(row["metadata"])["source"] == "judge"
    assert judge_project(conn, P)["calls"] == 0  # judged once: not asked again


def test_a_judge_that_always_says_a_makes_no_pairs(conn, settings, llm):
    llm.mode = "always_a"
    with_judge(conn, llm)
    gid = group(conn, settings, 1, good="b")
    done = judge_project(conn, P)
    assert (done["verdicts"], done["ties"]) == (1, 1)  # the two orders disagree: a tie
    (value,) = conn.hvals(keys.ProjectKeys(P).judgements(gid))
    assert value.decode().startswith("=|") and value.decode().endswith("|j|AA")
    pair(conn)
    assert pairs_of(conn, gid) == []


def test_people_decide_first_and_the_judge_is_not_asked_about_their_pairs(conn, settings, llm):
    with_judge(conn, llm)
    # People say "one" is better; the judge would say "correct".
    gid = group(conn, settings, 1, "b", feedback("like", "g1a", user="u1"), feedback("dislike", "g1b", user="u1"))
    assert judge_project(conn, P)["calls"] == 0
    # A judgement a judge made before people voted is overruled by them.
    gid2 = group(conn, settings, 2, good="b")
    judge_project(conn, P)
    store_and_pair(conn, settings, feedback("like", "g2a", user="u1"), feedback("dislike", "g2b", user="u1"))
    pair(conn)
    assert [(c, r, m["source"]) for c, r, m in pairs_of(conn, gid2)] == [("answer 2 one", "answer 2 correct", "vote")]
    assert [m["source"] for _, _, m in pairs_of(conn, gid)] == ["vote"]


def test_the_daily_budget_holds_under_two_concurrent_workers(conn, settings, llm):
    import subprocess
    import sys

    from tests.support import server_env

    with_judge(conn, llm, daily_budget=6)
    for n in range(10):
        group(conn, settings, n, good="a")
    env = {**server_env(settings), "JUDGE_KEY": SECRET}
    argv = [sys.executable, "-m", "likeloop_cli", "judge", "--project", P]
    workers = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [json.loads(w.communicate(timeout=120)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert llm.calls <= 6 and sum(r["calls"] for r in results) == llm.calls
    assert any(r["budget_spent"] for r in results)
    assert judge_project(conn, P)["calls"] == 0  # the rest waits for the next day


def test_429s_are_retried_and_unparseable_replies_counted(conn, settings, llm):
    with_judge(conn, llm)
    group(conn, settings, 1, good="a")
    llm.fail_first = 2
    done = judge_project(conn, P)
    assert done["verdicts"] == 1 and llm.calls == 4  # two refused, then both orders
    llm.mode = "garbage"
    group(conn, settings, 2, good="a")
    done = judge_project(conn, P)
    assert (done["unparseable"], done["verdicts"]) == (2, 0)
    total = conn.hgetall(keys.ProjectKeys(P).stats_total)
    assert int(total[b"judge_unparseable"]) == 2 and int(total[b"judge_calls"]) == 4


@pytest.mark.parametrize("command", ["judge", "reference"])
def test_likeloop_judge_and_reference_exit_1_when_the_model_keeps_failing(conn, settings, llm, command):
    import subprocess
    import sys

    from tests.support import server_env

    with_judge(conn, llm)
    projects.update_config(
        conn, P, reference={"base_url": llm.url, "model": "weak-1", "api_key_env": "JUDGE_KEY", "role": "rejected"}
    )
    group(conn, settings, 1, None, feedback("like", "g1a", "u1"), feedback("like", "g1b", "u1"))
    pair(conn)
    llm.fail_first = 1000  # every call is refused, each retry too
    env = {**server_env(settings), "JUDGE_KEY": SECRET}
    ran = subprocess.run(
        [sys.executable, "-m", "likeloop_cli", command, "--project", P], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["errors"] == 1 and "failed after retries" in ran.stderr
    llm.fail_first = 0
    again = subprocess.run(
        [sys.executable, "-m", "likeloop_cli", command, "--project", P], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["errors"] == 0 and json.loads(again.stdout)["calls"] >= 1


def test_the_model_key_is_never_stored_returned_or_logged(conn, settings, llm, client, caplog):
    caplog.set_level(logging.DEBUG)
    with_judge(conn, llm)
    group(conn, settings, 1, good="a")
    judge_project(conn, P)
    assert llm.auth == {f"Bearer {SECRET}"}  # it reached the model
    for name in conn.scan_iter():
        dumped = conn.dump(name) or b""
        assert SECRET.encode() not in dumped and SECRET.encode() not in name
    admin = make_key(conn, P)
    body = client.get("/v1/project", headers=auth(admin)).get_data(as_text=True)
    assert SECRET not in body and "JUDGE_KEY" in body
    assert SECRET not in caplog.text


def test_stats_say_how_often_the_judge_agrees_with_people(conn, settings, llm, client):
    with_judge(conn, llm)
    agreeing = group(conn, settings, 1, good="a")  # the judge will prefer a; people too
    disagreeing = group(conn, settings, 2, good="a")  # the judge will prefer a; people b
    judge_project(conn, P)
    store(conn, settings, feedback("like", "g1a", user="u1"), feedback("dislike", "g1b", user="u1"))
    store(conn, settings, feedback("like", "g2b", user="u1"), feedback("dislike", "g2a", user="u1"))
    pair(conn)
    assert {m["source"] for g in (agreeing, disagreeing) for _, _, m in pairs_of(conn, g)} == {"vote"}
    admin = make_key(conn, P)
    judge = client.get("/v1/stats", headers=auth(admin)).get_json()["judge"]
    assert (judge["agreed"], judge["disagreed"], judge["agreement"]) == (1, 1, 0.5)
    assert (judge["calls"], judge["verdicts"], judge["tokens"]) == (4, 2, 200)
    from tests.support import scrape

    assert 'likeloop_judge{counter="calls",project="acme"} 4.0' in scrape(client)


def with_reference(conn, llm, role, **overrides):
    make_key(conn, P)
    config = {"base_url": llm.url, "model": f"{role}-model", "api_key_env": "JUDGE_KEY", "role": role, **overrides}
    projects.update_config(conn, P, reference=config)


def test_a_weaker_models_answer_becomes_the_rejected_side_of_an_all_liked_group(conn, s3, settings, llm):
    from workers.ai.reference import reference_project

    with_reference(conn, llm, "rejected")
    store(conn, settings, response("a", "the liked answer", prompt="Q1"), feedback("like", "a", user="u1"))
    gid = conn.hget(keys.ProjectKeys(P).response("a"), "group").decode()
    group(conn, settings, 2, "a", feedback("like", "g2a", user="u1"), feedback("dislike", "g2b", user="u1"))  # decided
    done = reference_project(conn, P)
    assert (done["groups"], done["answers"], done["calls"]) == (1, 1, 1)
    pair(conn)
    ((chosen, rejected, meta),) = pairs_of(conn, gid)
    assert chosen == "the liked answer" and rejected.startswith("A reference answer from rejected-model to: Q1")
    assert (meta["source"], meta["source_model"]) == ("reference", "rejected-model")
    assert reference_project(conn, P)["calls"] == 0  # one reference per group
    from likeloop_server.stats import read_stats

    assert read_stats(conn, P)["reference"] == {"calls": 1, "tokens": 50, "answers": 1, "errors": 0,
                                                "ms": read_stats(conn, P)["reference"]["ms"]}  # fmt: skip
    human = export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot")
    assert human["counts"]["pairs"] == 1  # the decided group's vote pair only


def test_a_stronger_models_answer_becomes_the_chosen_side_within_the_budget(conn, settings, llm):
    from workers.ai.reference import reference_project

    with_reference(conn, llm, "chosen", daily_budget=1)
    for n in (1, 2):
        store(
            conn,
            settings,
            response(f"d{n}", f"a bad answer {n}", prompt=f"Q{n}"),
            feedback("dislike", f"d{n}", user="u"),
        )
    done = reference_project(conn, P)
    assert (done["answers"], done["budget_spent"], llm.calls) == (1, True, 1)
    pair(conn)
    gid = conn.hget(keys.ProjectKeys(P).response("d1"), "group").decode()
    ((chosen, rejected, meta),) = pairs_of(conn, gid)
    assert rejected == "a bad answer 1" and meta["source"] == "reference"


def test_an_export_chooses_its_pairs_by_source(conn, s3, settings, llm, client):
    with_judge(conn, llm)
    group(conn, settings, 1, "a", feedback("like", "g1a", user="u1"), feedback("dislike", "g1b", user="u1"))
    group(
        conn,
        settings,
        2,
        "a",
        feedback("rating", "g2a", user="u1", value=5),
        feedback("rating", "g2b", user="u1", value=1),
    )
    group(conn, settings, 3, good="a")
    judge_project(conn, P)
    pair(conn)

    def exported(sources, mode="snapshot"):
        manifest = export_project(conn, s3, settings, P, exports.new_export_id(), mode, sources=sources)
        return manifest["counts"]["pairs"]

    assert [exported(s) for s in ("human", "all", "vote", "judge,rating", "rating,judge")] == [2, 3, 1, 2, 2]
    assert exported("vote,comparison", mode="incremental") == 1
    admin = make_key(conn, P)
    bad = client.post("/v1/exports", json={"sources": "votes"}, headers=auth(admin))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "sources"
    ok = client.post("/v1/exports", json={"sources": "ranking,vote"}, headers=auth(admin))
    assert ok.status_code == 202


def test_the_migration_files_pairs_made_before_sources_were_kept(conn, settings):
    from workers.migrate import migrate

    make_key(conn, P)
    gid = group(conn, settings, 1, "a", feedback("like", "g1a", user="u1"), feedback("dislike", "g1b", user="u1"))
    pair(conn)
    pk = keys.ProjectKeys(P)
    (pair_id,) = group_pair_ids(conn, pk, gid)
    conn.delete(pk.source_pairs("vote"))
    conn.set(keys.LAYOUT, b"3")
    migrate(conn)
    assert conn.smembers(pk.source_pairs("vote")) == {pair_id.encode()}


def test_the_cron_judges_only_groups_idle_for_a_while(conn, settings, llm):
    with_judge(conn, llm)
    fresh = group(conn, settings, 1, good="a")
    old_ts = time.time() - 7200
    store(conn, settings, response("o1", "answer correct", prompt="Old", timestamp=old_ts),
          response("o2", "answer other", prompt="Old", timestamp=old_ts))  # fmt: skip
    done = judge_project(conn, P, idle_s=3600)
    assert (done["groups"], done["verdicts"]) == (1, 1)
    judged = {g.decode() for g in conn.scan_iter(match=keys.ProjectKeys(P).judgements("*"))}
    assert keys.ProjectKeys(P).judgements(fresh) not in judged

"""``likeloop pull``: an export downloaded as its manifest lists it, checked, and read offline by
``datasets.load_dataset``; plain output off a terminal, a progress bar on one."""

import json
import sys
from pathlib import Path

import pytest

from likeloop_server import apikeys, exports, projects
from tests.support import P, labelled, likeloop_cli, run_on_terminal, running_worker, server_env, store_and_pair
from workers.export.layout import Layout
from workers.export.run import export_project

N = 6


@pytest.fixture
def exported(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    store_and_pair(conn, settings, *[e for i in range(N) for e in labelled(i)])
    projects.update_config(conn, P, formats=("trl", "trl-chat", "openai", "kto"), parquet=True)
    snapshot = export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot")
    store_and_pair(conn, settings, *labelled(N))  # one more pair, then an incremental export (of all 7:
    # a snapshot does not move the incremental cursor)
    incremental = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    return snapshot, incremental


def load(folder, config, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    return datasets.load_dataset(str(folder), config, cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize("parquet", [False, True])
def test_the_latest_snapshot_is_pulled_and_loads_offline(exported, settings, tmp_path, monkeypatch, parquet):
    snapshot, _ = exported
    folder = tmp_path / "shop"
    out = likeloop_cli("pull", "--project", P, "--to", str(folder), *(["--parquet"] if parquet else []), "--json",
                       settings=settings)  # fmt: skip
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    assert done["export_id"] == snapshot["export_id"] and done["mode"] == "snapshot"
    assert done["configs"] == ["kto", "openai", "trl", "trl-chat"]
    assert json.loads((folder / "manifest.json").read_text())["export_id"] == snapshot["export_id"]
    assert not list(folder.rglob("*.partial"))
    trl = load(folder, "trl", tmp_path, monkeypatch)
    assert sorted(trl["train"]["chosen"]) == sorted(f"good {i}" for i in range(N))
    assert load(folder, None, tmp_path, monkeypatch)["train"].column_names == trl["train"].column_names
    assert load(folder, "kto", tmp_path, monkeypatch)["train"].num_rows == 2 * N
    assert load(folder, "openai", tmp_path, monkeypatch)["train"].num_rows == N


def test_a_named_export_is_pulled(exported, settings, tmp_path, monkeypatch):
    _, incremental = exported
    folder = tmp_path / "inc"
    out = likeloop_cli("pull", "--project", P, "--to", str(folder), "--export", incremental["export_id"],
                       settings=settings)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"pulled export {incremental['export_id']} of {P}")
    assert incremental["counts"]["pairs"] == N + 1
    chosen = load(folder, "trl", tmp_path, monkeypatch)["train"]["chosen"]
    assert sorted(chosen) == sorted(f"good {i}" for i in range(N + 1))


def test_an_object_that_differs_from_its_manifest_is_refused(exported, s3, settings, tmp_path):
    snapshot, _ = exported
    (victim,) = [f for f in snapshot["files"] if f["format"] == "trl" and f["file_format"] == "jsonl"]
    s3.put_object(Bucket=settings.s3_bucket, Key=victim["key"], Body=b"not what was exported")
    folder = tmp_path / "shop"
    out = likeloop_cli("pull", "--project", P, "--to", str(folder), settings=settings)
    assert out.returncode == 1 and "sha256" in out.stderr and victim["key"] in out.stderr
    assert not list(folder.rglob("*.partial")) and not (folder / "README.md").exists()


def test_no_snapshot_yet_is_a_clear_error(conn, s3, settings, tmp_path):
    apikeys.create_key(conn, P, ("ingest",))
    out = likeloop_cli("pull", "--project", P, "--to", str(tmp_path / "x"), settings=settings)
    assert out.returncode == 2 and f"no export of project '{P}' under s3://" in out.stderr
    store_and_pair(conn, settings, *labelled(0))
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    out = likeloop_cli("pull", "--project", P, "--to", str(tmp_path / "x"), settings=settings)
    assert out.returncode == 2 and "no snapshot export yet" in out.stderr
    assert f"likeloop export --project {P} --mode snapshot --wait" in out.stderr
    out = likeloop_cli("pull", "--project", P, "--to", str(tmp_path / "x"), "--export", "nope", settings=settings)
    assert out.returncode == 2 and "no export 'nope'" in out.stderr


def test_an_unknown_project_is_named_as_such(conn, s3, settings, tmp_path):
    out = likeloop_cli("pull", "--project", "nosuch", "--to", str(tmp_path / "x"), settings=settings)
    assert out.returncode == 2 and "no project 'nosuch'" in out.stderr and "likeloop export" not in out.stderr


def test_parquet_names_the_snapshot_that_has_it(conn, s3, settings, tmp_path):
    apikeys.create_key(conn, P, ("ingest",))
    store_and_pair(conn, settings, *labelled(0))
    with_parquet = export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot", None, True)
    export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot", None, False)
    out = likeloop_cli("pull", "--project", P, "--to", str(tmp_path / "x"), "--parquet", settings=settings)
    assert out.returncode == 2 and "wrote no Parquet files" in out.stderr
    assert f"snapshot {with_parquet['export_id']} did" in out.stderr
    assert f"--export {with_parquet['export_id']} --parquet" in out.stderr
    assert "--mode snapshot --parquet --wait" in out.stderr


def test_on_a_terminal_it_shows_progress(exported, settings, tmp_path):
    argv = [sys.executable, "-m", "likeloop_cli", "pull", "--project", P, "--to", str(tmp_path / "t")]
    status, stdout, shown = run_on_terminal(argv, server_env(settings))
    assert status == 0
    assert b"pull: 100%" in shown, shown  # tqdm's bar, on the terminal
    assert stdout.startswith("pulled export")  # the result stays plain on stdout


def test_export_wait_says_how_it_goes_on_a_terminal_and_prints_only_json_off_one(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    store_and_pair(conn, settings, *labelled(0))
    with running_worker(settings):
        argv = [sys.executable, "-m", "likeloop_cli", "export", "--project", P, "--wait"]
        status, stdout, shown = run_on_terminal(argv, server_env(settings))
        assert status == 0 and json.loads(stdout)["status"] == "succeeded"
        assert b": queued (0 s)" in shown or b": running" in shown, shown
        assert b": succeeded" in shown, shown
        assert b"1 rows" in shown or b"2 rows" in shown, shown  # the rows written, counted up
        plain = likeloop_cli("export", "--project", P, "--wait", settings=settings)
        assert plain.returncode == 0 and plain.stderr == "" and json.loads(plain.stdout)["status"] == "succeeded"


@pytest.mark.parametrize(
    "relative, says",
    [
        ("../../escaped.jsonl.gz", "outside"),
        ("trl/../../escaped.jsonl.gz", "outside"),
        ("/tmp/escaped.jsonl.gz", "not a file of this dataset"),
        ("README.md", "outside"),
        (None, "not a file of this dataset"),  # a key of another prefix altogether
    ],
)
def test_a_manifest_cannot_make_pull_write_outside_its_folder(exported, s3, settings, tmp_path, relative, says):
    snapshot, _ = exported
    layout = Layout(settings, P)
    (key,) = [k for k in manifest_keys(s3, layout) if k.endswith(f"-{snapshot['export_id']}.json")]
    manifest = json.loads(s3.get_object(Bucket=layout.bucket, Key=key)["Body"].read())
    victim = next(f for f in manifest["files"] if f["kind"] == "pairs" and f["file_format"] == "jsonl")
    victim["key"] = f"{layout.dataset_root('jsonl')}/{relative}" if relative else "elsewhere/escaped.jsonl.gz"
    s3.put_object(Bucket=layout.bucket, Key=key, Body=json.dumps(manifest).encode())
    folder = tmp_path / "deep" / "inside" / "shop"
    out = likeloop_cli("pull", "--project", P, "--to", str(folder), settings=settings)
    assert out.returncode == 1 and says in out.stderr, out.stderr
    assert not folder.exists()  # refused before anything was written
    assert not list(tmp_path.rglob("escaped*")) and not Path("/tmp/escaped.jsonl.gz").exists()


def manifest_keys(s3, layout):
    listed = s3.list_objects_v2(Bucket=layout.bucket, Prefix=layout.manifests)
    return [o["Key"] for o in listed.get("Contents", [])]

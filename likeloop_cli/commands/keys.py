"""``likeloop keys create|list|revoke``: project API keys."""

from __future__ import annotations

import argparse
import json
import sys

from likeloop_server import apikeys
from likeloop_server.errors import EXIT_FAILED, EXIT_OK

from ._common import add_command, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    keys_p = add_command(
        sub,
        "keys",
        "create, list and revoke project API keys",
        ["likeloop keys create --project shop --scope ingest", "likeloop keys list --project shop"],
    )
    keys_sub = keys_p.add_subparsers(dest="keys_cmd", required=True, metavar="ACTION")
    create = add_command(
        keys_sub,
        "create",
        "mint a key (the project is created if new)",
        [
            "likeloop keys create --project shop --scope ingest",
            "likeloop keys create --project shop --scope read --json",
        ],
    )
    create.add_argument("--project", required=True, help="project name: lowercase letters, digits, '-', '_'")
    create.add_argument("--scope", default="ingest", help="comma-separated: ingest,read,admin (default ingest)")
    create.add_argument("--json", action="store_true", help="print the key and its record as JSON")
    lst = add_command(keys_sub, "list", "list keys (never their secrets)", ["likeloop keys list --project shop --json"])
    lst.add_argument("--project", help="only this project's keys")
    lst.add_argument("--json", action="store_true", help="print JSON")
    revoke = add_command(keys_sub, "revoke", "revoke a key by its id", ["likeloop keys revoke 1a2b3c4d5e6f"])
    revoke.add_argument("key_id", help="the key id shown by 'keys create' and 'keys list'")
    keys_p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return {"create": _create, "list": _list, "revoke": _revoke}[args.keys_cmd](args)


def _create(args: argparse.Namespace) -> int:
    secret, record = apikeys.create_key(redis_client(), args.project, apikeys.parse_scopes(args.scope))
    if args.json:
        print(json.dumps({"key": secret, **record.as_dict()}))
    else:
        print(f"project: {record.project}\nscopes:  {','.join(record.scopes)}\nkey id:  {record.id}")
        print(f"key:     {secret}\n(shown once: only its hash is stored)")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    found = apikeys.list_keys(redis_client(), args.project)
    if args.json:
        print(json.dumps([k.as_dict() for k in found]))
    else:
        for k in found:
            state = "revoked" if k.revoked else "active"
            print(f"{k.id}  {k.project:<24} {','.join(k.scopes):<20} {state}")
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    if apikeys.revoke(redis_client(), args.key_id):
        print(f"revoked {args.key_id}")
        return EXIT_OK
    print(f"error: no key with id {args.key_id!r}", file=sys.stderr)
    return EXIT_FAILED

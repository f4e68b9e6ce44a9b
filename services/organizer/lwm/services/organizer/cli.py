"""`lwm admin`: operator commands on the organizer's storage and the gateway's API tokens.

A command of the `lwm` CLI (lwm.client.cli), which finds it through the entry-point group
lwm.commands; the storage modules are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lwm.client.cli import EXIT_ERROR, EXIT_NOT_FOUND

if TYPE_CHECKING:
    from lwm.rpc.auth import TokenStore
    from lwm.services.organizer.metadata import MetadataStore
    from lwm.services.organizer.object_store import ObjectStore


def _organizer_storage(args: argparse.Namespace) -> tuple[MetadataStore, ObjectStore]:
    """The organizer's (metadata, objects) as configured by --data-dir/--db-url and the LWM_* variables."""
    from lwm.services.organizer.server import OrganizerConfig

    data_dir = Path(args.data_dir or os.environ.get("LWM_DATA_DIR", ".lwm-data"))
    return OrganizerConfig.from_env(data_dir, args.db_url or os.environ.get("LWM_DB_URL", "")).open_storage()


def cmd_admin_backup(args: argparse.Namespace) -> int:
    from lwm.services.organizer.backup import backup_market

    summary = backup_market(*_organizer_storage(args), Path(args.directory))
    print(f"backed up {summary.learnwares} learnwares ({summary.bytes} bytes) to {args.directory}")
    return 0


def cmd_admin_restore(args: argparse.Namespace) -> int:
    from lwm.services.organizer.backup import restore_market

    summary = restore_market(*_organizer_storage(args), Path(args.directory))
    print(f"restored {summary.learnwares} learnwares ({summary.bytes} bytes); {len(summary.skipped)} were already present")
    return 0


def cmd_admin_sweep(args: argparse.Namespace) -> int:
    from lwm.services.organizer.sweeper import sweep

    report = sweep(*_organizer_storage(args), grace_s=args.grace_s)
    print(f"removed {len(report.removed)} orphan objects, kept {report.kept}, {report.too_young} unreferenced but younger than {args.grace_s:g} s")
    return 0


def cmd_admin_migrate(args: argparse.Namespace) -> int:
    metadata, _ = _organizer_storage(args)  # opening the store applies the migrations
    print(f"metadata schema is current (latest revision {metadata.latest_revision()})")
    return 0


def _token_store(args: argparse.Namespace) -> TokenStore:
    from lwm.rpc.auth import TokenStore

    path = args.tokens_file or os.environ.get("LWM_TOKENS_FILE", "")
    if not path:
        raise ValueError("name the tokens file with --tokens-file or LWM_TOKENS_FILE")
    return TokenStore(Path(path))


def cmd_admin_token(args: argparse.Namespace) -> int:
    store = _token_store(args)
    if args.token_command == "create":
        token, record = store.create(args.user, args.role, ttl_s=args.expires_in_days * 86400)
        expiry = "never expires" if not record.expires_at else f"expires in {args.expires_in_days:g} days"
        print(f"token {record.id} for {record.user} ({record.role}, {expiry}); it is shown only now:", file=sys.stderr)
        print(token)
    elif args.token_command == "list":
        print(f"{'ID':<10} {'USER':<20} {'ROLE':<6} EXPIRES")
        for record in store.tokens().values():
            print(f"{record.id:<10} {record.user:<20} {record.role:<6} {time.strftime('%Y-%m-%d %H:%M', time.gmtime(record.expires_at)) if record.expires_at else 'never'}")
    elif not store.revoke(args.id):
        print(f"lwm admin token revoke: no token {args.id!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    return 0


ADMIN_COMMANDS = {"backup": cmd_admin_backup, "restore": cmd_admin_restore, "sweep": cmd_admin_sweep, "migrate": cmd_admin_migrate, "token": cmd_admin_token}


def cmd_admin(args: argparse.Namespace) -> int:
    from lwm.rpc.errors import ServiceError

    try:
        return ADMIN_COMMANDS[args.admin_command](args)
    except ServiceError as error:  # storage unreachable
        print(f"lwm admin {args.admin_command}: {error.message}", file=sys.stderr)
        return EXIT_ERROR


def add_admin_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`lwm admin`: registered in the entry-point group lwm.commands (pyproject.toml)."""
    admin = sub.add_parser("admin", help="operator commands on the organizer's storage (run where it is reachable)")
    admin.set_defaults(handler=cmd_admin)
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument("--data-dir", help="organizer data directory (env LWM_DATA_DIR, default .lwm-data)")
    storage.add_argument("--db-url", help="SQLAlchemy URL of the metadata database (env LWM_DB_URL); S3 from LWM_S3_*")
    backup = admin_sub.add_parser("backup", parents=[storage], help="copy every learnware (row + zip) into a new directory")
    backup.add_argument("directory")
    restore = admin_sub.add_parser("restore", parents=[storage], help="load a backup directory into the market's storage")
    restore.add_argument("directory")
    sweep = admin_sub.add_parser("sweep", parents=[storage], help="remove stored zips that no learnware references")
    sweep.add_argument("--grace-s", type=float, default=3600.0, help="keep unreferenced zips younger than this (uploads in flight)")
    admin_sub.add_parser("migrate", parents=[storage], help="bring the metadata schema up to date (Alembic)")
    token = admin_sub.add_parser("token", help="API tokens of the gateway (the tokens file holds only their hashes)")
    token.add_argument("--tokens-file", help="tokens file of the gateway (env LWM_TOKENS_FILE)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="make a token and print it (once)")
    create.add_argument("--user", required=True)
    create.add_argument("--role", choices=["user", "admin"], default="user")
    create.add_argument("--expires-in-days", type=float, default=0.0, help="0 = never")
    token_sub.add_parser("list", help="list tokens (ids, users, roles, expiry)")
    revoke = token_sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")

"""``python -m backend.devstack prepare|demo``: local services for tests and the demo."""

from __future__ import annotations

import argparse
import sys

from . import demo
from .services import ensure_database, ensure_postgres, ensure_redis

DB_NAME = DB_USER = DB_PASSWORD = "spineagent"


def prepare() -> None:
    """PostgreSQL and Redis running, the project's database role and database present."""
    ensure_postgres()
    ensure_redis()
    ensure_database(DB_NAME, DB_USER, DB_PASSWORD)
    print("devstack: PostgreSQL and Redis ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="start PostgreSQL and Redis if needed, create the database")
    demo_parser = sub.add_parser("demo", help="run the whole stack with phantom studies")
    demo.add_arguments(demo_parser)
    args = parser.parse_args(argv)
    prepare()
    if args.command == "demo":
        return demo.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

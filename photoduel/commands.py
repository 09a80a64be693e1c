"""Maintenance commands (import, reindex, ratings rebuild, celebrities import), registered on the CLI."""

from __future__ import annotations

import argparse


def register_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    return None

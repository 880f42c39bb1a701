"""Errors that the CLI turns into exit codes."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input (spec, manifest, arguments): exit 2, nothing created or submitted."""


class SchedulerError(Exception):
    """A scheduler command failed; the message carries the command and its raw output."""

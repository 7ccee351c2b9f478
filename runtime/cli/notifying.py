"""`cep notify test`: see a rule's message before anything fires."""

from __future__ import annotations

import json

import click

from runtime.cli.common import did_you_mean, fail, load_program
from runtime.cli.group import main


@main.group()
def notify() -> None:
    """Notification tools."""


@notify.command(name="test")
@click.argument("file")
@click.option("--rule", "rule_id", required=True, help="Rule whose message to render.")
@click.option("--channel", "channel", required=True, help="Channel to send it through.")
@click.option("--record", default=None, help="Match record as JSON (default: a sample built from the rule's columns).")
@click.option("--dry-run", is_flag=True, help="Render only; send nothing.")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Allow this host/network (e.g. 127.0.0.1).")
def notify_test(file: str, rule_id: str, channel: str, record: str | None, dry_run: bool, allow_hosts: tuple[str, ...]) -> None:
    """Render a rule's message and send it through a channel, to see it before anything fires."""
    from runtime.notify import DestinationPolicy
    from runtime.notify import notify_test as send_test

    program = load_program(file)
    rules = [r.id for r in program.rules]
    channels = [c.name for c in program.channels]
    if rule_id not in rules:
        fail(f"{file}: no rule `{rule_id}` (rules: {', '.join(rules)})", 2, did_you_mean(rule_id, rules))
    if channel not in channels:
        fail(f"{file}: no channel `{channel}` (channels: {', '.join(channels) or 'none'})", 2, did_you_mean(channel, channels))
    rec = None
    if record:
        try:
            rec = json.loads(record)
        except json.JSONDecodeError as e:
            fail(f"--record: invalid JSON: {e.msg}", 2)
    try:
        result = send_test(program, rule_id, channel, rec, send=not dry_run, policy=DestinationPolicy.from_entries(allow_hosts))
    except Exception as e:  # channel errors are the user's to see, secrets already redacted
        fail(str(e))
    click.echo(result if isinstance(result, str) else json.dumps(result, indent=2, default=str))
    # A script asks "did it arrive?" with the exit code: a failed delivery or a template that
    # did not render is a failure, as `amtool` and `curl --fail` would have it.
    if isinstance(result, dict) and result.get("ok") is False:
        fail(f"delivery through `{channel}` failed: {result.get('error')}", 1)
    if isinstance(result, dict) and result.get("template_error"):
        fail(f"the message template of `{rule_id}` did not render: {result['template_error']}", 1)

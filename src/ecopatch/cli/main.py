"""The ``ecopatch`` command group.

Each subcommand lives in its own module under :mod:`ecopatch.cli` and only
parses arguments, calls the library or :mod:`ecopatch.run.pipeline`, and prints a
summary.  Exit codes: 0 success, 1 an :class:`~ecopatch.errors.EcopatchError`
(one line on stderr; the traceback only with ``-vv``), 2 bad usage (click).
"""

from __future__ import annotations

import importlib
import logging
import sys
from functools import partial
from typing import Any

import click

from ecopatch import __version__
from ecopatch.errors import EcopatchError

# name -> "module:attribute"; loaded lazily so `ecopatch --help` stays fast.
COMMANDS: dict[str, str] = {
    "demo": "ecopatch.cli.demo:demo",
    "assess": "ecopatch.cli.assess:assess",
    "detect": "ecopatch.cli.detect:detect",
    "ledger": "ecopatch.cli.ledger:ledger",
    "fieldcheck": "ecopatch.cli.fieldcheck:fieldcheck",
    "mines": "ecopatch.cli.mines:mines",
    "report": "ecopatch.cli.report:report",
    "run": "ecopatch.cli.run:run",
}


class StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    A plain ``StreamHandler(sys.stderr)`` keeps the stream it was made with:
    after a command run in-process (click's ``CliRunner``, a notebook) it
    went on writing to that command's captured, closed stream.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        """The current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # set by StreamHandler.__init__; the live sys.stderr wins
        pass


def stderr_handler() -> StderrHandler:
    """The CLI's log handler: the current ``sys.stderr``, one line per record with time and level."""
    from ecopatch.vector.sanitize import SafeLogFormatter

    handler = StderrHandler()
    handler.setFormatter(SafeLogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def configure_logging(verbosity: int) -> None:
    """Send ecopatch's log records to stderr at a level set by ``-v``/``-q``."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    root = logging.getLogger("ecopatch")
    root.handlers[:] = [stderr_handler()]
    root.setLevel(level)


def _restore_logging(handlers: list[logging.Handler], level: int) -> None:
    root = logging.getLogger("ecopatch")
    root.handlers[:] = handlers
    root.setLevel(level)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """All subcommand names."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import a subcommand on first use."""
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # command not built yet in this checkout
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr)

    def invoke(self, ctx: click.Context) -> object:
        """Run, turning an EcopatchError into one line on stderr and exit code 1."""
        try:
            return super().invoke(ctx)
        except EcopatchError as exc:
            verbosity = (ctx.obj or {}).get("verbosity", 0)
            if verbosity >= 2:
                raise
            from ecopatch.vector.sanitize import for_terminal

            click.echo(for_terminal(f"Error: {exc}"), err=True)
            ctx.exit(getattr(exc, "exit_code", 1))


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="ecopatch")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug and tracebacks).")
@click.option("-q", "--quiet", count=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Ecopatch: sky watch, ground check (天上看、地上查) for mines and nature reserves."""
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbose - quiet
    # the command's logging lasts as long as the command: a caller that runs it in-process
    # (a notebook, a test) gets its own handlers and level back afterwards
    root = logging.getLogger("ecopatch")
    ctx.call_on_close(partial(_restore_logging, list(root.handlers), root.level))
    configure_logging(verbose - quiet)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ecopatch")


if __name__ == "__main__":
    main()

"""``ecopatch run``: one scheduled run from a config file (cron, systemd timers).

Parses the arguments, loads the config (:func:`ecopatch.run.config.load_config`),
hands off to :func:`ecopatch.run.pipeline.run_pipeline` and prints a summary.

Exit codes (:class:`ecopatch.run.outcome.ExitCode`):

==  =====================================================================
0   OK: new scenes processed (or recorded as skipped); a dry run found work
1   failure (unexpected error, ledger or output problem)
2   usage error (unknown option, missing argument)
3   bad configuration (the message names the key and what is allowed)
4   bad input (unreadable imagery or polygons, wrong CRS, missing band)
5   nothing new to process
6   locked: another run holds this ledger's run lock
130 interrupted (Ctrl-C); 143 terminated (SIGTERM)
==  =====================================================================
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from ecopatch.cli.options import options_of, scheduler_opt
from ecopatch.options import RunOptions

__all__ = ["run"]


@click.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, default=False,
              help="Process scenes again even if a complete run folder records them (no duplicate ledger events).")
@click.option("--dry-run", is_flag=True, default=False,
              help="Only list the scenes that would be processed, with their baselines; write nothing.")
@click.option("--scene", "scenes", multiple=True, metavar="ID|DATE",
              help="Only these scenes (scene ID, glob of IDs, or YYYY-MM-DD); repeatable.")
@click.option("--out-dir", default=None, type=click.Path(file_okay=False),
              help="Override [outputs] dir (the ledger follows unless [outputs] ledger or --ledger names it).")
@click.option("--ledger", "ledger_path", default=None, type=click.Path(dir_okay=False),
              help="Override [outputs] ledger.")
@scheduler_opt
@options_of(RunOptions, only=("max_new_cases",), override="run")
@click.option("--allow-many-cases", is_flag=True, default=False,
              help="Open any number of new cases per scene (override [run] allow_many_cases).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars (default: only on a terminal; log lines otherwise).")
@click.option("-v", "--verbose", count=True, help="More log output (also before 'run': ecopatch -v run ...).")
@click.option("-q", "--quiet", count=True, help="Only errors; no summary on success.")
@click.pass_context
def run(ctx: click.Context, config_path: str, force: bool, dry_run: bool, scenes: tuple[str, ...],
        out_dir: str | None, ledger_path: str | None, scheduler: str | None, max_new_cases: int | None,
        allow_many_cases: bool, progress: bool | None, verbose: int, quiet: int) -> None:
    """Process the imagery that is new since the last run: assess mines, detect changes, update the ledger.

    CONFIG is a TOML file (see docs/scheduled-runs.md).  Each new scene gets a
    dated folder in [outputs] dir with results, change map, field package,
    report, run.log and manifest.json.  Exit codes: 0 ok, 1 failure, 2 usage,
    3 bad config, 4 bad input, 5 nothing new, 6 locked by another run.

    Example (cron, every day at 02:30):

        30 2 * * *  ecopatch run /srv/ecopatch/ecopatch.toml -q
    """
    from ecopatch.errors import EcopatchError
    from ecopatch.run.config import load_config
    from ecopatch.run.outcome import ExitCode, exit_code_for
    from ecopatch.run.pipeline import run_pipeline

    verbosity = (ctx.obj or {}).get("verbosity", 0) + verbose - quiet
    _configure_logging(verbosity)
    try:
        with _terminate_as_exit():
            cfg = load_config(config_path)
            if (out_dir is not None or ledger_path is not None or scheduler is not None
                    or max_new_cases is not None or allow_many_cases):
                cfg = cfg.with_overrides(out_dir=out_dir, ledger=ledger_path, scheduler=scheduler,
                                         max_new_cases=max_new_cases, allow_many_cases=allow_many_cases or None)
            result = run_pipeline(cfg, force=force, dry_run=dry_run, scenes=scenes, progress=progress)
    except EcopatchError as exc:
        _fail(ctx, exc, int(exit_code_for(exc)), verbosity)
    except KeyboardInterrupt:
        click.echo("Interrupted: the ledger is as before or holds whole scenes only; run again to finish.", err=True)
        ctx.exit(130)
    except _Terminated:
        click.echo("Terminated: the ledger is as before or holds whole scenes only; run again to finish.", err=True)
        ctx.exit(143)
    except Exception as exc:  # noqa: BLE001 - an unattended run must end with a message and code 1
        _fail(ctx, exc, int(ExitCode.FAILURE), verbosity, unexpected=True)
    if verbosity >= 0 or result.exit_code not in (ExitCode.OK, ExitCode.NOTHING_NEW):
        from ecopatch.vector.sanitize import for_terminal

        click.echo(for_terminal(result.summary()), err=result.exit_code not in (ExitCode.OK, ExitCode.NOTHING_NEW))
    ctx.exit(int(result.exit_code))


class _Terminated(BaseException):
    """SIGTERM (systemd stop, a timeout) turned into an exception, so locks are released."""


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Raise :class:`_Terminated` on SIGTERM inside the block (main thread only)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, AttributeError):  # not the main thread, or no SIGTERM
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(ctx: click.Context, exc: BaseException, code: int, verbosity: int, *, unexpected: bool = False) -> None:
    if verbosity >= 2 or unexpected:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    prefix = {3: "Bad config", 4: "Bad input", 6: "Locked"}.get(code, "Error")
    from ecopatch.vector.sanitize import for_terminal

    click.echo(for_terminal(f"{prefix}: {exc}"), err=True)
    ctx.exit(code)


def _configure_logging(verbosity: int) -> None:
    """Log to stderr at the level asked (INFO when not on a terminal), and at INFO or finer to run.log."""
    root = logging.getLogger("ecopatch")
    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if verbosity <= -1:
        level = logging.ERROR
    elif verbosity == 0:
        level = logging.WARNING if tty else logging.INFO
    elif verbosity == 1:
        level = logging.INFO
    else:
        level = logging.DEBUG
    if not root.handlers:  # called outside the group (tests): log to stderr like the group does
        from ecopatch.cli.main import stderr_handler

        root.addHandler(stderr_handler())
    for h in root.handlers:
        h.setLevel(level)
    root.setLevel(min(level, logging.INFO))

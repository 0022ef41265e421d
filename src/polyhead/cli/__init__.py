"""The `polyhead` command line. Every user error is one line on stderr with exit code 2, never a traceback."""
from __future__ import annotations

import os
import sys

import typer

from polyhead.errors import PolyheadError

app = typer.Typer(
    name="polyhead",
    help="One shared transformer encoder, many task heads: embed sentences, train several tasks jointly, "
    "evaluate, predict and study training strategies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no "<bool>" type labels on flags
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"polyhead {version('polyhead')}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print polyhead's version and exit.")) -> None:
    """One shared transformer encoder, many task heads."""


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"polyhead: error: {message}", err=True)
    raise typer.Exit(code)


def quiet_libraries() -> None:
    """Silence transformers' per-load progress bars and advice; polyhead reports what matters itself."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


from polyhead.cli import demo_cmd, encode_cmds, model_cmds, multilingual_cmds, study_cmd  # noqa: E402,F401  (registers commands)


def main() -> None:
    debug = os.environ.get("POLYHEAD_DEBUG") == "1"
    try:
        app()
    except PolyheadError as exc:
        if debug:
            raise
        typer.echo(f"polyhead: error: {exc}", err=True)
        sys.exit(2)
    except (ValueError, TypeError) as exc:
        if debug:
            raise
        typer.echo(f"polyhead: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # a path the system refused (permissions, read-only file system, disk full)
        if debug:
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        typer.echo(f"polyhead: error: {exc.strerror or exc}{where}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("polyhead: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if debug:
            raise
        typer.echo(f"polyhead: internal error: {type(exc).__name__}: {exc} (set POLYHEAD_DEBUG=1 for the traceback)",
                   err=True)
        sys.exit(1)

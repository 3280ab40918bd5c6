"""``ecopatch demo``: the whole job on the bundled sample data."""

from __future__ import annotations

import click

from ecopatch.cli.options import overwrite_opt, progress_opt


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--data", default=None, type=click.Path(exists=True, file_okay=False),
              help="Sample folder (default: ./sample_data, or generated into OUT_DIR/sample_data).")
@click.option("--lang", default="zh", show_default=True, type=click.Choice(["zh", "en"]), help="Map/report labels.")
@click.option("--report/--no-report", default=True, show_default=True, help="Draw maps, chips and the report.")
@overwrite_opt
@progress_opt
def demo(out_dir, data, lang, report, overwrite, progress):
    """Assess the sample's mines, detect suspect patches, fill a ledger, write a report, score vs truth.

    Example: ecopatch demo demo-out
    """
    from ecopatch.run.demo import run_demo

    result = run_demo(out_dir, data=data, overwrite=overwrite, lang=lang, report=report, progress=progress)
    click.echo(result.summary())

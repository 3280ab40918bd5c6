"""``ecopatch demo``: the README's first command, and the figures the README quotes from it."""

from click.testing import CliRunner

from ecopatch.cli.main import cli
from ecopatch.run.demo import run_demo


def test_the_demo_finds_every_true_patch_and_nothing_else(tmp_path):
    r = run_demo(tmp_path / "out", report=False, progress=False)
    s = r.patch_score
    # README, "On the bundled sample": 10/10 found, 10/10 right, no sub-MMU decoy reported
    assert (s.n_true, s.n_found) == (10, 10) and s.recall == 1.0 and s.precision == 1.0, s.table
    decoys = s.table[s.table["enc_id"].str.startswith("DECOY")]
    assert len(decoys) == 4 and not decoys["found"].any()
    assert r.files["patches"].exists() and r.ledger_counts["new"] == len(r.patches)
    # every mine assessed, the drone's mine too
    assert len(r.assessment) == 8 and r.drone_assessment is not None and len(r.drone_assessment) == 1


def test_the_demo_refuses_a_folder_with_results(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    res = CliRunner().invoke(cli, ["demo", str(out), "--no-report"])
    assert res.exit_code != 0 and "not empty" in res.output
    assert (out / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_the_demo_command_says_what_it_does():
    res = CliRunner().invoke(cli, ["demo", "--help"])
    assert res.exit_code == 0 and "truth" in res.output

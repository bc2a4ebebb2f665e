"""The command line as a user runs it (click's runner; the console script is tested in .ci via pip install)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from haplomatch.cli import main
from haplomatch.ligands import COLUMNS


@pytest.fixture(scope="module")
def run():
    runner = CliRunner()

    def _run(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return _run


def test_ligands_must_show(run):
    # Issue 2 "must show": values from IPD-KIR ligand data / Moesta 2008 (RULES 1.3, 1.9, 1.11, 1.14)
    r = run("ligands", "C*07:02", "C*16:02", "B*57:01", "B*44:02", "B*46:01", "A*24:02", "B*15", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [x["ligand"] for x in rows[:6]] == ["C1", "C2", "Bw4-80I", "Bw4-80T", "Bw6", "Bw4-80I"]
    assert rows[4]["c1_epitope"] is True
    assert rows[6]["ligand"] is None
    assert {"Bw6", "Bw4-80I"} <= set(rows[6]["possible_ligands"])
    assert all(set(COLUMNS) <= set(x) for x in rows)
    assert rows[2]["leader"] == "T" and rows[0]["leader"] is None  # leader is HLA-B only
    assert rows[0]["release"].startswith("IPD-IMGT/HLA 3.58.0")


def test_ligands_table(run):
    r = run("ligands", "B*07:02", "Cw7")
    assert r.exit_code == 0
    assert "Bw6" in r.output and "ligand ambiguous" in r.output and "IPD-IMGT/HLA 3.58.0" in r.output


def test_unknown_name_exits_2_and_suggests(run):
    r = CliRunner().invoke(main, ["ligands", "B*57:011"])
    assert r.exit_code == 2
    assert "B*57:011" in r.output and "B*57:01" in r.output


def test_reference_info(run):
    r = run("reference", "info", "--format", "json")
    info = json.loads(r.output)
    assert info["imgthla_release"] == "3.58.0" and info["ipdkir_release"] == "2.13.0"
    assert info["hla_alleles"] == 41433 and info["kir_alleles"] == 2219
    assert info["cache"]


def test_reference_build_and_other_release_folder(run, tmp_path, monkeypatch):
    import shutil

    from haplomatch.reference.release import shipped_root

    # A user-downloaded release folder with the same layout is used, and cached under its own key.
    other = tmp_path / "release"
    shutil.copytree(shipped_root(), other)
    monkeypatch.setenv("HAPLOMATCH_CACHE", str(tmp_path / "cache"))
    r = run("reference", "build", "--reference", str(other))
    assert r.exit_code == 0, r.output
    assert str(tmp_path / "cache") in r.output
    info = json.loads(run("reference", "info", "--reference", str(other), "--format", "json").output)
    assert info["release_folder"] == str(other.resolve())


def test_incomplete_release_folder_is_refused(run, tmp_path):
    r = CliRunner().invoke(main, ["reference", "info", "--reference", str(tmp_path)])
    assert r.exit_code == 1
    assert "lacks" in r.output


def test_input_errors_print_once_as_errors_and_warnings_as_warnings(tmp_path):
    """A file that cannot be read: 'Error: <file>: file not found', not 'Error: error: …'; the messy example's
    unrecognised column is a warning line, its bad cells 'Error:' lines naming file, row and column."""
    from pathlib import Path

    r = CliRunner().invoke(main, ["rank", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2
    assert r.output.strip() == f"Error: {tmp_path / 'missing.csv'}: file not found"
    messy = Path(__file__).parent.parent / "examples" / "messy-family.csv"
    lines = CliRunner().invoke(main, ["rank", str(messy)]).output.splitlines()
    assert f"warning: {messy} [favourite_colour]: column not recognised: its values are not used" in lines[0]
    assert f"Error: {messy}:2 [sex]: 'F': a father cannot be sex F" in lines[1]
    assert not any("Error: error" in x or "Error: warning" in x for x in lines)


def _readme_examples() -> list[tuple[str, list[str]]]:
    """README's ``text`` blocks that run one ``haplomatch`` command on shipped files or arguments alone (no
    generated data, no clock): the command and the output shown (a line '…' stands for lines left out)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```text\n(.*?)```", text, re.S):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("$ haplomatch "):
            continue
        n = 1
        while lines[n - 1].endswith("\\"):
            n += 1
        if any(x.startswith("$ ") for x in lines[n:]):
            continue  # several commands (data generated first)
        cmd = " ".join(x.rstrip("\\").strip() for x in lines[:n])[len("$ haplomatch "):]
        if cmd.split()[0] in ("rank", "haplotypes", "match", "kir", "ligands"):
            out.append((cmd, lines[n:]))
    return out


def test_readme_examples_are_found():
    assert [c.split()[0] for c, _ in _readme_examples()] == ["rank", "haplotypes", "match", "kir", "ligands", "ligands"]


@pytest.mark.parametrize("cmd,shown", _readme_examples(), ids=lambda x: x if isinstance(x, str) else "")
def test_readme_examples_are_what_the_commands_print(cmd, shown, monkeypatch):
    """README shows what the command prints: each run of lines between '…' gaps appears, in order, in the
    output of the same command run from the project's root (stderr and stdout as on a terminal)."""
    import shlex
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    r = CliRunner().invoke(main, shlex.split(cmd), catch_exceptions=False)
    got = [x.rstrip() for x in r.output.splitlines()]
    at = 0
    segments, seg = [], []
    for x in shown:
        if x.strip() == "…":
            segments.append(seg)
            seg = []
        else:
            seg.append(x.rstrip())
    segments.append(seg)
    for seg in segments:
        if not seg:
            continue
        for start in range(at, len(got) - len(seg) + 1):
            if got[start:start + len(seg)] == seg:
                at = start + len(seg)
                break
        else:
            raise AssertionError(f"README's output of 'haplomatch {cmd}' is not what it prints: missing\n"
                                 + "\n".join(seg) + "\n--- printed:\n" + "\n".join(got))


def test_readme_search_example_is_what_the_commands_print(tmp_path, monkeypatch):
    """README's registry-search example (a simulated registry, seeded, and one patient) prints what README
    shows, but the time and speed of the last line."""
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```text\n(.*?)```", text, re.S)
                if b.startswith("$ haplomatch simulate registry --n 100000 --seed 7")]
    lines = block.splitlines()
    search = " ".join(x.rstrip("\\").strip() for x in lines[2:4])[len("$ haplomatch "):]
    timing = re.compile(r"in [0-9.]+ s( \([0-9,]+ donors/s)?")
    monkeypatch.chdir(tmp_path)
    got = []
    for args in (lines[0][len("$ haplomatch "):], search):
        r = CliRunner().invoke(main, shlex.split(args), catch_exceptions=False)
        assert r.exit_code == 0, r.output
        got += [timing.sub("in …", x.rstrip()) for x in r.output.splitlines()]
    assert got == [timing.sub("in …", x.rstrip()) for x in [lines[1], *lines[4:]]]


def test_readme_screen_example_is_what_the_commands_print(tmp_path):
    """README's screening example (simulated families, seed 7, and a family with an unknown allele), run as a
    shell script with ``haplomatch`` being this interpreter's: each command's output is what README shows."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```text\n(.*?)```", text, re.S)
                if b.startswith("$ haplomatch simulate families --n 200 --seed 7")]
    commands = [x[2:] for x in block.splitlines() if x.startswith("$ ")]
    shown = [x for x in block.splitlines() if not x.startswith("$ ")]
    script = ("haplomatch() { \"$PY\" -c 'import sys; from haplomatch.cli import main; sys.argv[0] = \"haplomatch\"; "
              "main()' \"$@\"; }\n" + "\n".join(f"{c} 2>&1" for c in commands) + "\n")
    r = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                       env={**__import__("os").environ, "PY": sys.executable})
    assert r.returncode == 0, r.stdout + r.stderr
    timing = re.compile(r"in [0-9.]+ s ")
    assert [timing.sub("in … ", x.rstrip()) for x in r.stdout.splitlines()] == [timing.sub("in … ", x.rstrip())
                                                                             for x in shown]

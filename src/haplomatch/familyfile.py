"""Reading family files (CSV, TSV, Parquet): one row per person, every problem located by file, row, column.

Column names match case-insensitively, ignoring spaces, dots, dashes and underscores, with the aliases of
``COLUMN_ALIASES``. HLA loci come as one column per locus (``A``, ``HLA-A``) holding both alleles, or two
columns per locus (``A_1``/``A_2``, ``HLA-A_1``/``HLA-A_2``, ``A.1``/``A.2``). KIR genes come as one column
per gene (``KIR2DL1``, ``2DL1``; presence/absence or allele strings) or one ``kir`` column (a GL string or a
list of present genes). Nothing is dropped silently: a bad cell is an error naming its row and column, an
unknown column a warning.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import date
from pathlib import Path
from typing import Callable, Iterable

import polars as pl

from haplomatch.errors import InputError, Problem
from haplomatch.family import HLA_LOCI, RELATION_ALIASES, RELATION_SEX, RELATIONS, Family, Person, person_of
from haplomatch.hlatyping import (
    MISSING_SECOND_DEFAULT, MissingSecond, check_names, name_problems, parse_cell, simple_cell,
    typing_of,
)
from haplomatch.nomenclature import Nomenclature
from haplomatch.persons import ATTRIBUTES, people_table, slot_strings

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "family_id": ("familyid", "family", "famid", "fid", "pedigree", "pedigreeid"),
    "id": ("id", "personid", "individualid", "individual", "sampleid", "subject", "subjectid", "iid", "name"),
    "relation": ("relation", "relationship", "role", "rel", "relationtopatient"),
    "father_id": ("fatherid", "father", "paternalid", "patid", "dadid"),
    "mother_id": ("motherid", "mother", "maternalid", "matid", "momid", "mumid"),
    "sex": ("sex", "gender"),
    "age": ("age", "ageyears", "ageyrs"),
    "birth_date": ("birthdate", "dob", "dateofbirth", "born"),
    "weight_kg": ("weightkg", "weight", "wtkg", "bodyweight"),
    "abo": ("abo", "abors", "aborh", "bloodgroup", "bloodtype", "abogroup"),
    "cmv": ("cmv", "cmvstatus", "cmvserostatus", "cmvigg"),
    "fcgr3a": ("fcgr3a", "fcgr3a158", "cd16", "cd16a", "fcgr3av158f"),
    "available": ("available", "availability", "eligible", "donoravailable"),
    "parity": ("parity", "pregnancies", "nparity"),
    "kir": ("kir", "kirgenotype", "kirtyping", "kirgl", "kirgenes"),
    # a whole HLA typing as one GL string (IHIW-18 PED files call it Phenotype)
    "hla": ("hla", "hlagl", "glstring", "hlaglstring", "phenotype", "hlatyping", "hlagenotype"),
}
# a cell of two allele names in normal form, as polars reads it (ASCII blanks only, so that polars and
# Python agree on what is stripped); see _CellMemo.column
_PLAIN = r"[A-Z0-9]+\*[A-Z0-9:]+"
_PLAIN_PAIR = rf"^[ \t]*({_PLAIN})[ \t]*\+[ \t]*({_PLAIN})[ \t]*$"
_PLAIN_ONE = rf"^[ \t]*({_PLAIN})[ \t]*$"
KIR_COLUMN = re.compile(r"^(?:KIR)?([23]D[LSP]\d[AB]?)(N|DEL|FL|FULL)?$", re.IGNORECASE)
_HLA_COL = re.compile(r"^(?:HLA)?(" + "|".join(sorted(HLA_LOCI, key=len, reverse=True)) + r")(?:([12]))?$", re.IGNORECASE)


def _key(name: str) -> str:
    return re.sub(r"[\s._\-]", "", name).lower()


@dataclass(frozen=True)
class Settings:
    """Reading settings; each is documented in README (input format)."""

    missing_second: MissingSecond = MISSING_SECOND_DEFAULT


@dataclass(frozen=True)
class ColumnMap:
    """Which file column holds what: attributes, HLA (one or two columns per locus), KIR."""

    attributes: dict[str, str]
    hla_single: dict[str, str]
    hla_pair: dict[str, tuple[str, str]]
    kir_genes: dict[str, str]
    unknown: tuple[str, ...]


def map_columns(columns: list[str]) -> tuple[ColumnMap, list[Problem]]:
    """Assign every column to a field, or report it as unknown (a warning: its values are not used)."""
    problems: list[Problem] = []
    attrs: dict[str, str] = {}
    single: dict[str, str] = {}
    pairs: dict[str, dict[str, str]] = defaultdict(dict)
    kir: dict[str, str] = {}
    unknown: list[str] = []
    alias_of = {a: f for f, aliases in COLUMN_ALIASES.items() for a in aliases}
    for col in columns:
        k = _key(col)
        if k in alias_of:
            f = alias_of[k]
            if f in attrs:
                problems.append(Problem(f"two columns mean {f}: {attrs[f]!r} and {col!r}", column=col,
                                        fix="keep one of them"))
            else:
                attrs[f] = col
            continue
        m = _HLA_COL.match(k)
        if m:
            locus = next(x for x in HLA_LOCI if x.lower() == m[1].lower())
            if m[2]:
                pairs[locus][m[2]] = col
            else:
                single[locus] = col
            continue
        if KIR_COLUMN.match(k):
            kir[col] = col
            continue
        unknown.append(col)
    hla_pair: dict[str, tuple[str, str]] = {}
    for locus, d in pairs.items():
        if set(d) != {"1", "2"}:
            problems.append(Problem(f"locus {locus} has only column {next(iter(d.values()))!r} of a pair",
                                    column=next(iter(d.values())), fix=f"add the other {locus} column (_1 and _2)"))
            continue
        if locus in single:
            problems.append(Problem(f"locus {locus} is given both in one column and in two", column=single[locus]))
            continue
        hla_pair[locus] = (d["1"], d["2"])
    for col in unknown:
        problems.append(Problem("column not recognised: its values are not used", severity="warning", column=col,
                                fix="rename it to a documented column name (README: input format)"))
    if "id" not in attrs:
        problems.append(Problem("no id column", fix="add a column 'id' naming each person"))
    if "relation" not in attrs and not {"father_id", "mother_id"} <= set(attrs):
        problems.append(Problem("no relation column", fix="add a column 'relation' (patient, father, mother, sibling, …)"))
    elif "relation" not in attrs:
        problems.append(Problem("no relation column: relations are derived from father/mother ids and the patient "
                                "given with --patient", severity="warning"))
    return ColumnMap(attrs, single, hla_pair, kir, tuple(unknown)), problems


ROW = "__row__"


def read_table(path: str | Path) -> tuple[pl.DataFrame, list[Problem]]:
    """A table of strings (CSV, TSV or Parquet by extension; the CSV separator ',' ';' or tab is sniffed),
    with column ``__row__`` = the 1-based data row. A row with the wrong number of cells is reported, not read."""
    path = Path(path)
    fname = str(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pl.read_parquet(path).select(pl.all().cast(pl.String))
            return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64)), []
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError.one("file not found", file=fname) from None
    except (OSError, pl.exceptions.PolarsError) as e:
        raise InputError.one(f"cannot read the file: {e}", file=fname) from None
    suffix = path.suffix.lower()
    if suffix != ".ped":
        plain = _plain_text_table(raw[len(_BOM):] if raw.startswith(_BOM) else raw, suffix)
        if plain is not None:
            return plain
    # as Path.read_text reads it: a leading BOM dropped, undecodable bytes replaced, and universal newlines
    # (CR LF and a lone CR are line feeds)
    text = raw.decode("utf-8-sig", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    return _text_table(text, fname, suffix)


_BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark


def _text_table(text: str, fname: str, suffix: str) -> tuple[pl.DataFrame, list[Problem]]:
    """:func:`read_table` of a text, line by line: comment and blank lines skipped, ragged rows reported."""
    import csv
    import io

    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError.one("the file is empty", file=fname)
    first = lines[0]
    if suffix == ".ped":
        # IHIW-18 / PLINK-style pedigree: whitespace-separated columns
        rows = [ln.split() for ln in lines]
        return _to_table(rows, fname, " ")
    sep = sniff_separator(first, suffix)
    if not any(c in text for c in _NEEDS_CSV_MODULE):
        return _plain_table(lines, fname, sep)
    try:
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep))
    except csv.Error as e:  # a cell longer than the csv module's limit (128 KiB)
        raise InputError.one(f"cannot read the file: {e}", file=fname) from None
    return _to_table(rows, fname, sep)


# What makes polars and Python's csv module read a text differently: quotes, NUL, and characters that Python
# (but not polars) treats as blanks
_NEEDS_CSV_MODULE = ('"', "\x00", "\x1c", "\x1d", "\x1e", "\x1f")


def _plain_table(lines: list[str], fname: str, sep: str) -> tuple[pl.DataFrame, list[Problem]]:
    """:func:`_to_table` of lines without quotes, parsed by polars (a batch file has 10^5–10^6 rows):
    the same table and the same problems."""
    import io

    header = [h.strip() for h in lines[0].split(sep)]
    want = len(header) - 1
    counts = [ln.count(sep) for ln in lines[1:]]
    if len(set(header)) != len(header) or any(c != want for c in counts):
        return _to_table([ln.split(sep) for ln in lines], fname, sep)
    if len(lines) == 1:
        return pl.DataFrame(schema={h: pl.String for h in header} | {ROW: pl.Int64}), []
    body = "\n".join(lines[1:]) + "\n"
    df = pl.read_csv(io.BytesIO(body.encode()), has_header=False, schema={h: pl.String for h in header},
                     separator=sep, quote_char=None, empty_string_is_null=False)
    if not body.isascii() or " " in body or (sep != "\t" and "\t" in body):  # else no cell has blanks to strip
        df = df.select(pl.all().str.strip_chars())
    return df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias(ROW)), []


#: the bytes :func:`_plain_text_table` takes: printable ASCII and tab, line feed, carriage return, but no quote and
#: no '#' (it may start a comment line); and what it refuses besides: a blank line
_PLAIN_BYTES = bytes([9, 10, 13, *range(0x20, 0x7F)]).replace(b'"', b"").replace(b"#", b"")
_BLANK_LINE = re.compile(rb"\n[ \t]*(?:\r?\n|\Z)")
_BLANK_FIRST = re.compile(rb"[ \t]*\r?\n")


def sniff_separator(first: str, suffix: str) -> str:
    """The separator of a delimited text from its first line: tab, ';' or ','."""
    return "\t" if (suffix in (".tsv", ".tab") or first.count("\t") > first.count(",")) else (
        ";" if first.count(";") > first.count(",") else ",")


def _plain_text_table(text: str | bytes, suffix: str = "") -> tuple[pl.DataFrame, list[Problem]] | None:
    """:func:`read_table`'s answer for the usual batch file, or None: a text (or its UTF-8 bytes) with no
    comment, blank or ragged line and nothing that Python's line splitting, csv module or blank stripping read
    differently from polars (see ``_PLAIN_BYTES``) is read by polars whole, without a Python pass over its
    lines (10^5–10^6 rows)."""
    import io

    raw = (text if isinstance(text, bytes) else text.encode()).rstrip(b"\r\n")
    if (b"\n" not in raw or raw.translate(None, _PLAIN_BYTES) or (b"\r" in raw and raw.count(b"\r") != raw.count(b"\r\n"))
            or _BLANK_FIRST.match(raw) or _BLANK_LINE.search(raw)):
        return None
    head, body = raw.split(b"\n", 1)
    first = head.decode()
    sep = sniff_separator(first, suffix)
    header = [h.strip() for h in first.split(sep)]
    body += b"\n"
    n = body.count(b"\n")
    if len(set(header)) != len(header) or body.count(sep.encode()) != (len(header) - 1) * n:
        return None  # a repeated column name, or a row with too few or too many cells: reported by the slow path
    try:
        # no row has more cells than the header (polars refuses those) and the separators add up: so every
        # row has as many cells as the header
        df = pl.read_csv(io.BytesIO(body), has_header=False, schema={h: pl.String for h in header},
                         separator=sep, quote_char=None, empty_string_is_null=False)
    except pl.exceptions.PolarsError:  # more cells than the header (ComputeError or SchemaError)
        return None
    if df.height != n:
        return None
    if b" " in body or (sep != "\t" and b"\t" in body):  # else no cell has blanks to strip
        df = df.select(pl.all().str.strip_chars())
    return df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias(ROW)), []


def _to_table(rows: list[list[str]], fname: str, sep: str) -> tuple[pl.DataFrame, list[Problem]]:
    header = [h.strip() for h in rows[0]]
    problems: list[Problem] = []
    dupes = {h for h in header if header.count(h) > 1}
    for h in sorted(dupes):
        problems.append(Problem("the header names this column twice", file=fname, column=h, fix="rename one of them"))
    if dupes:
        raise InputError(problems)
    data: dict[str, list] = {h: [] for h in header}
    data[ROW] = []
    for i, r in enumerate(rows[1:], 1):
        if len(r) != len(header):
            problems.append(Problem(f"row has {len(r)} cells, the header has {len(header)}", file=fname, row=i,
                                    value=sep.join(r)[:80], fix="check for a missing or extra separator"))
            continue
        for h, v in zip(header, r):
            data[h].append(v.strip())
        data[ROW].append(i)
    schema = {h: pl.String for h in header} | {ROW: pl.Int64}
    return pl.DataFrame(data, schema=schema), problems


# -- cell readers: each returns (value, problem-or-None) ----------------------------------------------------
_YES = {"yes", "y", "true", "t", "1", "available", "avail"}
_NO = {"no", "n", "false", "f", "0", "unavailable", "not available", "na-unavailable"}


def _relation(v: str) -> str | None:
    t = re.sub(r"\s+", " ", v.strip().lower().replace("_", " "))
    t = RELATION_ALIASES.get(t, RELATION_ALIASES.get(t.replace(" ", ""), t))
    return t if t in RELATIONS else None


def _sex(v: str) -> str | None:
    t = v.strip().lower()
    # PED files code sex 1 = male, 2 = female, 0 = unknown
    return {"m": "M", "male": "M", "man": "M", "boy": "M", "f": "F", "female": "F", "woman": "F", "girl": "F",
            "w": "F", "1": "M", "2": "F"}.get(t)


_ABO = re.compile(r"^(AB|A|B|O|0)\s*(?:RH)?\s*([+-]|POS|NEG|POSITIVE|NEGATIVE|D\+|D-)?$", re.IGNORECASE)


def _abo(v: str) -> tuple[str, str | None] | None:
    m = _ABO.match(v.strip().upper().replace(" ", ""))
    if not m:
        return None
    group = "O" if m[1] == "0" else m[1]
    rh = m[2]
    if rh:
        rh = "+" if rh.upper().replace("D", "") in ("+", "POS", "POSITIVE") else "-"
    return group, rh


def _cmv(v: str) -> bool | None:
    t = v.strip().lower()
    if t in ("pos", "positive", "+", "1", "yes", "igg+", "reactive", "r"):
        return True
    if t in ("neg", "negative", "-", "0", "no", "igg-", "non-reactive", "nonreactive", "nr"):
        return False
    return None


def _fcgr3a(v: str) -> str | None:
    t = re.sub(r"158|176|[\s/]", "", v.strip().upper())
    return {"VV": "VV", "VF": "VF", "FV": "VF", "FF": "FF"}.get(t)


def _number(v: str) -> float | None:
    try:
        x = float(v.strip().replace(",", "."))
    except ValueError:
        return None
    return x


def _date(v: str) -> date | None:
    try:
        return date.fromisoformat(v.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class PeopleTable:
    """The people table of a file's rows (``persons.people_frame`` columns, one row per Person read, in
    reading order) with the Persons it stands for: :meth:`rows` finds a Person's row by identity, so a Person
    made later (e.g. by ``derive_relations``) is never taken for the one read."""

    frame: pl.DataFrame
    people: list[Person]

    @cached_property
    def _at(self) -> dict[int, int]:
        return {id(p): k for k, p in enumerate(self.people)}  # the Persons are kept: their ids stay theirs

    def rows(self, people: Iterable[Person]) -> list[int] | None:
        """The table row of each Person, or None when one of them is not a Person read here."""
        at = self._at
        out = [at.get(id(p)) for p in people]
        return None if None in out else out


def read_family_file(
    path: str | Path, nomenclature: Nomenclature, settings: Settings = Settings(), *, strict: bool = True,
    patient: str | None = None, table: tuple[pl.DataFrame, list[Problem]] | None = None,
) -> tuple[list[Family], list[Problem]]:
    """Every family in the file, and every problem found. With ``strict`` (the default) any error raises
    one InputError carrying all problems; otherwise families are returned from the rows that read clean.
    ``table``: the file's ``read_table`` result (or a part of it: whole families), when already read."""
    families, problems, _ = read_families_and_table(path, nomenclature, settings, strict=strict, patient=patient,
                                                    table=table, with_table=False)
    return families, problems


def _mapped(path: str | Path, table: tuple[pl.DataFrame, list[Problem]] | None, each: str,
            keep: Callable[[Problem], bool] = lambda p: True) -> tuple[str, pl.DataFrame, list[Problem], ColumnMap]:
    """A file's table (read unless given), its column map, and the problems of both with the file named
    (those ``keep`` keeps); a header without rows is one (``each``: what a row stands for)."""
    fname = str(path)
    table, problems = table if table is not None else read_table(path)
    problems = list(problems)
    cmap, col_problems = map_columns([c for c in table.columns if c != ROW])
    problems += [Problem(**{**p.to_dict(), "file": fname}) for p in col_problems if keep(p)]
    if table.height == 0 and not any(p.row is not None for p in problems):
        problems.append(Problem("the file has no data row (a header only)", file=fname,
                                fix=f"add one row per {each}"))
    return fname, table, problems, cmap


def read_families_and_table(
    path: str | Path, nomenclature: Nomenclature, settings: Settings = Settings(), *, strict: bool = True,
    patient: str | None = None, table: tuple[pl.DataFrame, list[Problem]] | None = None, with_table: bool = True,
) -> tuple[list[Family], list[Problem], PeopleTable | None]:
    """:func:`read_family_file`, and (``with_table``) the people table of the Persons read, made from the
    columns as they are read (a batch then needs no pass over its Persons to tabulate them)."""
    fname, table, problems, cmap = _mapped(path, table, "person")
    if any(p.severity == "error" for p in problems if p.row is None and p.column is None) or "id" not in cmap.attributes:
        if strict:
            raise InputError(problems)
        return [], problems, None
    memo = _CellMemo(nomenclature, with_kir=bool(cmap.kir_genes or "kir" in cmap.attributes))
    people, row_problems, clean, frame = _read_people(table, fname, cmap, memo, settings, with_table)
    read_people = people  # the Persons the table stands for (derive_relations below makes new ones)
    problems += row_problems
    if "relation" not in cmap.attributes:
        if patient is None:
            problems.append(Problem("the file has no relation column: say who the patient is (--patient ID)",
                                    file=fname, fix="add a relation column, or pass --patient"))
        else:
            from haplomatch.family import derive_relations

            people, p = derive_relations(people, patient)
            problems += [Problem(**{**x.to_dict(), "file": x.file or fname}) for x in p]
    # Family-level checks see every row, even one with a bad cell, so that no problem hides another.
    families, fam_problems = _group_families(people, fname, "family_id" in cmap.attributes)
    problems += fam_problems
    families = [Family(f.id, tuple(p for p in f.people if p.source_row in clean), f.warnings) for f in families]
    if strict and any(p.severity == "error" for p in problems):
        raise InputError(problems)
    return families, problems, None if frame is None else PeopleTable(frame, read_people)


def read_patients(path: str | Path, nomenclature: Nomenclature,
                  settings: Settings = Settings()) -> tuple[list[Person], list[Problem]]:
    """A file of patients (``haplomatch search --patients``): one row per patient, in the family-file columns
    (id, HLA, KIR, sex, age, abo, cmv, …); a relation column, when there is one, says ``patient`` on every row.
    Returns the patients (relation ``patient``) and the warnings; any error raises one InputError with every
    problem, located by file, row and column (a patient is never searched from a row that did not read)."""
    # every row is a patient: no relation column is needed (the family file's "no relation column" is not said)
    fname, table, problems, cmap = _mapped(path, None, "patient",
                                           keep=lambda p: not p.message.startswith("no relation column"))
    if any(p.severity == "error" and p.row is None for p in problems):
        raise InputError(problems)
    memo = _CellMemo(nomenclature, with_kir=bool(cmap.kir_genes or "kir" in cmap.attributes))
    people, row_problems, _, _ = _read_people(table, fname, cmap, memo, settings)
    problems += row_problems
    first: dict[str, int] = {}
    rel = cmap.attributes.get("relation")
    unread = {x.row for x in row_problems if x.column == rel}  # an unknown or empty relation: said already
    for p in people:
        if rel is not None and p.relation != "patient" and p.source_row not in unread:
            problems.append(Problem(f"a patients file lists patients only: this row is a {p.relation}", file=fname,
                                    row=p.source_row, column=rel,
                                    fix="keep the patient rows, or leave the relation column out"))
        if p.id and p.id in first:
            problems.append(Problem(f"patient {p.id!r} is also on row {first[p.id]}: each patient once", file=fname,
                                    row=p.source_row, column=cmap.attributes.get("id")))
        first.setdefault(p.id, p.source_row)
    if any(p.severity == "error" for p in problems):
        raise InputError(sorted(problems, key=lambda x: (x.row is not None, x.row or 0)))
    return [replace(p, relation="patient") for p in people], problems


# Each attribute column is read per distinct value (a file repeats them: sexes, blood groups, ages): a reader
# gives (value, None) or (None, (message, fix)) for a stripped, non-empty cell. The fields are listed in the
# order in which a row's problems are reported.
def _sex_cell(v: str):
    s = _sex(v)
    return (s, None) if s else (None, ("sex not understood", "use M or F"))


def _age_cell(v: str):
    age = _number(v)
    if age is None or not (0 <= age < 120):
        return None, ("age is not a number of years between 0 and 120", "write the age in years, e.g. 34")
    return age, None


def _birth_cell(v: str):
    d = _date(v)
    return (d, None) if d is not None else (None, ("birth date not in YYYY-MM-DD form", "write e.g. 1987-04-23"))


def _weight_cell(v: str):
    w = _number(v)
    if w is None or not (0 < w < 400):
        return None, ("weight is not a number of kilograms between 0 and 400", None)
    return w, None


def _abo_cell(v: str):
    r = _abo(v)
    return (r, None) if r else (None, ("blood group not understood", "write A, B, AB or O with Rh, e.g. 'A+' or 'O neg'"))


def _cmv_cell(v: str):
    c = _cmv(v)
    return (c, None) if c is not None else (None, ("CMV serostatus not understood", "write pos or neg"))


def _fcgr3a_cell(v: str):
    f = _fcgr3a(v)
    return (f, None) if f else (None, ("FCGR3A-158 genotype not understood", "write VV, VF or FF"))


def _available_cell(v: str):
    t = v.lower()
    a = True if t in _YES else False if t in _NO else None
    return (a, None) if a is not None else (None, ("availability not understood", "write yes or no"))


def _parity_cell(v: str):
    n = _number(v)
    if n is None or n < 0 or n != int(n):
        return None, ("parity is not a whole number", None)
    return int(n), None


_ATTRIBUTE_CELLS = {"age": _age_cell, "birth_date": _birth_cell, "weight_kg": _weight_cell, "abo": _abo_cell,
                    "cmv": _cmv_cell, "fcgr3a": _fcgr3a_cell, "available": _available_cell, "parity": _parity_cell}


def _column(table: pl.DataFrame, col: str | None) -> list[str]:
    """A column's cells, stripped, '' for an empty or missing cell."""
    if col is None:
        return [""] * table.height
    return ["" if v is None else str(v).strip() for v in table[col].to_list()]


def _by_value(values: list[str], read) -> list:
    """``read`` of every non-empty value, computed once per distinct value; (None, None) for ''."""
    seen: dict[str, tuple] = {"": (None, None)}
    out = []
    for v in values:
        hit = seen.get(v)
        if hit is None:
            hit = seen[v] = read(v)
        out.append(hit)
    return out


def _read_people(table: pl.DataFrame, fname: str, cmap: ColumnMap, memo: "_CellMemo", settings: Settings,
                 with_table: bool = False) -> tuple[list[Person], list[Problem], set[int], pl.DataFrame | None]:
    """Every row as a Person, the rows' problems (by row, then in the order of the columns' fields), the
    rows without an error, and (``with_table``) the people table of the Persons (``persons.people_frame``'s,
    made from the columns read rather than from the Persons). Read column by column, each distinct cell value
    once: a batch has 10^5 rows."""
    a = cmap.attributes
    rows = table[ROW].to_list()
    fields = ("id", "relation", "family_id", "father_id", "mother_id", "sex", "hla", "kir", *_ATTRIBUTE_CELLS)
    text = {f: _column(table, a.get(f)) for f in fields}
    relation = _by_value(text["relation"], lambda v: (_relation(v), None))
    sex = _by_value([v if v != "0" else "" for v in text["sex"]], _sex_cell)
    attrs = {f: _by_value(text[f], read) for f, read in _ATTRIBUTE_CELLS.items()}
    loci = [(locus, cmap.hla_single[locus], None) if locus in cmap.hla_single else
            (locus, f"{cmap.hla_pair[locus][0]}/{cmap.hla_pair[locus][1]}", cmap.hla_pair[locus])
            for locus in HLA_LOCI if locus in cmap.hla_single or locus in cmap.hla_pair]
    read = [memo.column(locus, col, table, pair, settings) for locus, col, pair in loci]
    hla_cells = [cells for cells, _, _ in read]
    # a row whose locus cells have no problem and no GL cell beside them takes its typings as they are
    names = [locus for locus, _, _ in loci]
    typed_rows = zip(*([t for t, _ in cells] for cells in hla_cells)) if hla_cells else iter(lambda: (), None)
    hla_problem_rows = {k for cells in hla_cells for k, (_, p) in enumerate(cells) if p}
    kir_cols = list(cmap.kir_genes)
    kir_keys = list(zip(*(table[c].to_list() for c in kir_cols))) if kir_cols else None
    kir_names = tuple(kir_cols)
    people: list[Person] = []
    problems: list[Problem] = []
    clean: set[int] = set()
    values = {f: [v for v, _ in cells] for f, cells in attrs.items()}
    sexes: list[str | None] = []  # each row's sex as read or implied by its relation
    kirs: list = []
    # the attribute cells that do not read, per field (in report order): row -> (message, fix)
    unread = [(f, d) for f, d in ((f, {k: why for k, (_, why) in enumerate(cells) if why}) for f, cells in attrs.items())
              if d]

    def bad(found: list[Problem], k: int, i: int, field: str, message: str, fix: str | None = None) -> None:
        found.append(Problem(message, file=fname, row=i, column=a.get(field), value=text[field][k], fix=fix))

    for k, i in enumerate(rows):
        found: list[Problem] = []
        pid = text["id"][k]
        if not pid:
            bad(found, k, i, "id", "empty id", "give every person an id")
        rel = relation[k][0]
        if "relation" in a and rel is None:
            bad(found, k, i, "relation", "unknown relation" if text["relation"][k] else "empty relation",
                "use one of: " + ", ".join(RELATIONS))
        sx, why = sex[k]
        if why:
            bad(found, k, i, "sex", *why)
        if rel in RELATION_SEX and sx and sx != RELATION_SEX[rel]:
            bad(found, k, i, "sex", f"a {rel} cannot be sex {sx}", "correct the relation or the sex column")
        if rel in RELATION_SEX and sx is None:
            sx = RELATION_SEX[rel]
        for f, rows_unread in unread:
            why = rows_unread.get(k)
            if why:
                bad(found, k, i, f, *why)
        typed = next(typed_rows)
        if not text["hla"][k] and k not in hla_problem_rows:
            hla = {locus: t for locus, t in zip(names, typed) if t is not None}
        else:
            hla = _row_hla(k, i, fname, a, text, loci, hla_cells, memo, settings, found)
        sexes.append(sx)
        kir = None
        if kir_keys is not None or text["kir"][k]:
            kir, p = memo.kir_row(kir_names, kir_keys[k] if kir_keys is not None else (), text["kir"][k], a.get("kir"))
            if p:
                found += _located(p, fname, i)
        kirs.append(kir)
        abo_rh = values["abo"][k] or (None, None)
        people.append(person_of(dict(
            id=pid, relation=rel or "unrelated", family_id=text["family_id"][k] or None,
            father_id=_parent_id(text["father_id"][k]), mother_id=_parent_id(text["mother_id"][k]), sex=sx,
            age=values["age"][k], birth_date=values["birth_date"][k], weight_kg=values["weight_kg"][k], abo=abo_rh[0],
            rh=abo_rh[1], cmv=values["cmv"][k], fcgr3a=values["fcgr3a"][k], available=values["available"][k],
            parity=values["parity"][k], hla=hla, kir=kir, source_file=fname, source_row=i,
        )))
        if found:
            problems += found
            if any(p.severity == "error" for p in found):
                continue
        clean.add(i)
    if not with_table:
        return people, problems, clean, None
    abo = values["abo"]
    data = {"id": text["id"], "relation": [r or "unrelated" for r, _ in relation],
            "family_id": [f or None for f in text["family_id"]], "sex": sexes,
            "abo": [x[0] if x else None for x in abo], "rh": [x[1] if x else None for x in abo],
            **{f: values[f] for f in ("age", "weight_kg", "cmv", "fcgr3a", "available", "parity")}}
    slots: dict[str, tuple] = {locus: (s1, s2) for (locus, _, _), (_, s1, s2) in zip(loci, read)}
    gl_rows = [k for k, v in enumerate(text["hla"]) if v]
    if gl_rows:  # a GL cell gives loci of its own (and wins over a locus column): those rows from their typing
        for locus in HLA_LOCI:
            empty = pl.Series([None] * len(people), dtype=pl.String)
            slots[locus] = _patched(slots.get(locus) or (empty, empty), gl_rows,
                                    [slot_strings(people[k].hla.get(locus)) for k in gl_rows])
    return people, problems, clean, people_table({c: data[c] for c in ATTRIBUTES}, slots, kirs)


def _row_hla(k: int, i: int, fname: str, a: dict, text: dict, loci: list, hla_cells: list, memo: "_CellMemo",
             settings: Settings, found: list[Problem]) -> dict:
    """Row ``k``'s (file row ``i``) typings by locus, its problems added to ``found``: a GL cell's loci, then
    each locus column's (a locus in both is reported)."""
    hla: dict = {}
    if text["hla"][k]:
        gl_text = text["hla"][k]
        src = {"file": fname, "row": i, "column": a["hla"]}
        typed, p = memo.gl(gl_text, a["hla"], settings)
        found += _located(p, fname, i)
        for locus, t in typed.items():
            if locus not in HLA_LOCI:
                found.append(Problem(f"locus {locus} is not used for donor choice; ignored", severity="warning",
                                     value=gl_text, **src))
                continue
            hla[locus] = t
    for (locus, col, _), cells in zip(loci, hla_cells):
        t, p = cells[k]
        if p:
            found += _located(p, fname, i)
        if t is not None and locus in hla:
            found.append(Problem(f"locus {locus} is given both in the GL string and in its own column",
                                 file=fname, row=i, column=col))
        elif t is not None:
            hla[locus] = t
    return hla


def _parent_id(v: str) -> str | None:
    """A parent id cell: empty, '0' (PED) or '-' mean no parent in the file."""
    return None if v in ("", "0", "-", ".") else v


def _located(problems: list[Problem], fname: str, row: int) -> list[Problem]:
    """Problems found for a cell value, placed at the row that holds it."""
    return [replace(p, file=fname, row=row) for p in problems] if problems else []


_SHARED: dict[int, tuple[Nomenclature, dict[str, dict]]] = {}


def _shared(nomenclature: Nomenclature, what: str) -> dict:
    """A memo shared by the reads of one process with this nomenclature: the problems of each allele name
    (per locus and column), the reading of each KIR cell pattern. A batch reads a file in pieces, and the
    pieces share their names and patterns (per-cell HLA readings are not shared: nearly every one is new)."""
    hit = _SHARED.get(id(nomenclature))
    if hit is None or hit[0] is not nomenclature:
        hit = _SHARED[id(nomenclature)] = (nomenclature, {})  # kept, so its id is not reused
    memo = hit[1].setdefault(what, {})
    if len(memo) > 1_000_000:
        memo.clear()
    return memo


class _CellMemo:
    """What one file's cell values read as, computed once per distinct value: a family file repeats the
    same typings (parents and children share alleles; KIR gene-content patterns are few). The values are
    immutable; problems are kept without file and row, which ``_located`` adds for each row."""

    def __init__(self, nomenclature: Nomenclature, with_kir: bool) -> None:
        self.nom = nomenclature
        self._hla: dict[tuple, tuple] = {}
        self._names: dict[tuple, list[Problem]] = _shared(nomenclature, "names")
        self.kir_release = None
        if with_kir:
            from haplomatch.kir import _release_list

            self.kir_release = _release_list()
        self._kir: dict[tuple, tuple] = _shared(nomenclature, f"kir {id(self.kir_release)}")
        self._kir_rows: dict[tuple, tuple] = _shared(nomenclature, f"kir rows {id(self.kir_release)}")

    def cell(self, locus: str, column: str, value, second, settings: Settings):
        key = (locus, column, value, second, settings.missing_second)
        hit = self._hla.get(key)
        if hit is None:
            src = {"column": column}
            t = simple_cell(value, locus, second) if isinstance(value, str) and (
                second is None or isinstance(second, str)) else None
            if t is not None:  # the usual cell: its names are checked one by one, each once per file
                (s1, s2), = t.genotypes
                if len(s1) == len(s2) == 1:
                    p = self._name(s1[0], locus, column)
                    if s2[0] != s1[0]:
                        p = p + self._name(s2[0], locus, column)
                else:
                    p = [x for name in t.names() for x in self._name(name, locus, column)]
            else:
                t, p = parse_cell(value, locus, second=second, missing_second=settings.missing_second, source=src)
                if t is not None:
                    p = p + check_names(t, self.nom, src)
            hit = self._hla[key] = (t, p)
        return hit

    def column(self, locus: str, column: str, table: pl.DataFrame, pair: tuple[str, str] | None,
               settings: Settings) -> tuple[list[tuple], pl.Series, pl.Series]:
        """:meth:`cell` of every row of a locus (one column, or the two of ``pair``), and the slot strings of
        each row's typing (two columns, as ``persons.slot_strings``). Cells of two names in normal form
        (``A*01:01+A*02:01``; spaces and tabs around them) are recognised by polars for the whole column, and
        typed as :func:`~haplomatch.hlatyping.simple_cell` types them; the rest go to :meth:`cell`."""
        if pair is None:
            raw = table[column]
            found = raw.str.extract_groups(_PLAIN_PAIR)
            slot1, slot2 = found.struct.field("1"), found.struct.field("2")
            values, others = raw.to_list(), [None] * table.height
        else:
            slot1 = table[pair[0]].str.extract(_PLAIN_ONE, 1)
            slot2 = table[pair[1]].str.extract(_PLAIN_ONE, 1)
            values, others = table[pair[0]].to_list(), [w or "" for w in table[pair[1]].to_list()]
        firsts, seconds = slot1.to_list(), slot2.to_list()
        out = []
        seen: dict = {}  # cell text (one column) or the two names (two columns) -> (typing, problems)
        checked = {n: self._name(n, locus, column) for n in {*firsts, *seconds} if n is not None}
        other_rows: list[int] = []  # the rows of the other cells, and their slot strings
        other_slots: list[tuple[str | None, str | None]] = []
        for k, (v, w, x, y) in enumerate(zip(values, others, firsts, seconds)):
            if x is None or y is None:
                hit = self.cell(locus, column, v, w, settings)
                out.append(hit)
                other_rows.append(k)
                other_slots.append(slot_strings(hit[0]))
                continue
            # the cell's text fixes its two names (one column), as the two names fix it (two columns)
            key = v.strip() if pair is None else (x, y)
            hit = seen.get(key)
            if hit is None:
                p = checked[x]
                if y != x and checked[y]:
                    p = p + checked[y]
                text = key if pair is None else f"{x}+{y}"
                hit = seen[key] = (typing_of(locus, (((x,), (y,)),), text, False), p)
            out.append(hit)
        return (out, *_patched((slot1.rename("1"), slot2.rename("2")), other_rows, other_slots))

    def _name(self, name: str, locus: str, column: str) -> list[Problem]:
        key = (name, locus, column)
        hit = self._names.get(key)
        if hit is None:
            hit = self._names[key] = name_problems(name, locus, self.nom, {"column": column})
        return hit

    def gl(self, text: str, column: str, settings: Settings):
        key = ("\x00gl", column, text, None, settings.missing_second)
        hit = self._hla.get(key)
        if hit is None:
            from haplomatch.hlatyping import from_gl_text

            src = {"column": column}
            typed, p = from_gl_text(text, missing_second=settings.missing_second, source=src)
            for locus, t in typed.items():
                if locus in HLA_LOCI:
                    p = p + check_names(t, self.nom, src)
            hit = self._hla[key] = (typed, p)
        return hit

    def kir(self, cells: dict[str, str | None], whole: str, whole_col: str | None):
        key = (tuple(cells.items()), whole)
        hit = self._kir.get(key)
        if hit is None:
            hit = self._kir[key] = _read_kir(cells, whole, whole_col, self.kir_release)
        return hit

    def kir_row(self, columns: tuple[str, ...], values: tuple, whole: str, whole_col: str | None):
        """:meth:`kir` of a row's KIR gene cells (``values``, in the order of ``columns``), looked up by the
        row's values: no dict is made for a pattern met before (a batch repeats a few hundred patterns)."""
        key = (columns, values, whole)
        hit = self._kir_rows.get(key)
        if hit is None:
            hit = self._kir_rows[key] = self.kir(dict(zip(columns, values)), whole, whole_col)
        return hit


def _patched(slots: tuple[pl.Series, pl.Series], rows: list[int],
             values: list[tuple[str | None, str | None]]) -> tuple[pl.Series, pl.Series]:
    """Two slot-string columns with ``rows`` set to ``values`` (pairs); new Series (scatter writes in place)."""
    if not rows:
        return slots
    at = pl.Series(rows, dtype=pl.UInt32)
    return tuple(s.clone().scatter(at, pl.Series([v[i] for v in values], dtype=pl.String))
                 for i, s in enumerate(slots))


def _read_kir(cells: dict[str, str | None], whole: str, whole_col: str | None, release=None):
    """KIR from gene columns or one typing cell; the kir module reads the values."""
    from haplomatch import kir as kirmod

    problems: list[Problem] = []
    try:
        if cells:
            values = {c: ("" if v is None else str(v)) for c, v in cells.items()}
            return kirmod.from_columns(values, release=release), problems
        src = {"column": whole_col}
        if "*" in whole or "#" in whole:
            return kirmod.parse_gl(whole, source=src, release=release), problems
        return kirmod.parse_gene_list(whole, source=src), problems
    except InputError as e:
        return None, list(e.problems)


def _group_families(people: list[Person], fname: str, has_family_column: bool) -> tuple[list[Family], list[Problem]]:
    problems: list[Problem] = []
    groups: dict[str | None, list[Person]] = defaultdict(list)
    for p in people:
        groups[p.family_id].append(p)
    if has_family_column and None in groups:
        for p in groups[None]:
            problems.append(Problem("empty family_id in a file with several families", file=fname, row=p.source_row,
                                    column="family_id", fix="give the family id"))
    families = []
    for fid, members in groups.items():
        ids: dict[str, int] = {}
        for p in members:
            if p.id in ids:
                problems.append(Problem(f"id {p.id!r} is used twice (rows {ids[p.id]} and {p.source_row})",
                                        file=fname, row=p.source_row, column="id", value=p.id, fix="make ids unique"))
            ids[p.id] = p.source_row or 0
        patients = [p for p in members if p.relation == "patient"]
        label = f"family {fid}" if fid else "the family"
        if len(patients) != 1:
            problems.append(Problem(
                f"{label} has {len(patients)} patients; exactly one row must have relation 'patient'", file=fname,
                row=patients[1].source_row if len(patients) > 1 else None, column="relation",
                fix="mark the one patient"))
        for p in members:
            for field in ("father_id", "mother_id"):
                ref = getattr(p, field)
                if ref is None:
                    continue
                if ref and ref not in ids:
                    problems.append(Problem(f"{field} {ref!r} is not an id in {label}", file=fname, row=p.source_row,
                                            column=field, value=ref, fix="give the parent a row, or leave the cell empty"))
                if ref and ref == p.id:
                    problems.append(Problem("a person cannot be their own parent", file=fname, row=p.source_row,
                                            column=field, value=ref))
        families.append(Family(fid, tuple(members)))
    return families, problems

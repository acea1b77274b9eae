"""Reading one CSV file of the extract: encoding, header check, rows with their line numbers.

Everything that makes a whole file unusable is a FileError naming the file, the line where it is
known, the problem and what to do; everything that is wrong with one row is left to the row rules
(validate.py) so that row goes to the quarantine and the rest loads.
"""
from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from pathlib import Path

ENCODINGS = {"utf-8": "utf-8-sig", "utf8": "utf-8-sig", "gb18030": "gb18030", "gbk": "gb18030"}
# A field over 4,096 characters is a bad row (quarantined), not a bad file: the parser's own
# limit (128 KiB by default) must sit far above that. A field past this limit is no field but a
# broken file (an unclosed quote swallowing the rest), and fails the file.
FIELD_LIMIT = 64 * 1024 * 1024
csv.field_size_limit(FIELD_LIMIT)

# Mojibake: GB18030 bytes that are also valid UTF-8 decode to runs of U+0080-U+07FF (Latin-1,
# Greek, Cyrillic, Hebrew, Arabic...) standing alone, where a real name would have Chinese or
# would sit inside a Latin word (José).
_SUSPECT_RUN = re.compile(r"(?<![A-Za-z])[\u0080-\u07ff]+(?![A-Za-z])")
_CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


class FileError(ValueError):
    """A file that cannot be ingested at all: it names the file and the problem."""


@dataclass
class Columns:
    """A file read whole (CsvFile.columns): ``table`` has the rows as wide as the header, one
    string column per header column, ``lines`` their line numbers; ``other`` the rows of
    another width as (line, fields)."""
    header: list[str]
    table: Any
    lines: Any
    other: list[tuple[int, list[str]]]


def codec(encoding: str) -> str:
    try:
        return ENCODINGS[encoding.lower()]
    except KeyError:
        raise FileError(f"encoding {encoding!r} is not supported: use utf-8 or gb18030 (run conf "
                        f"'encoding' or the Airflow variable arrears_encoding)") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reads_as_gb18030(text: str) -> str | None:
    """The GB18030 reading of ``text``'s first run that looks like mojibake (see _SUSPECT_RUN)
    when that reading is all Chinese; None when the text is plausible as it is."""
    for match in _SUSPECT_RUN.finditer(text):
        try:
            other = match.group().encode("utf-8").decode("gb18030")
        except UnicodeDecodeError:
            continue
        if all(_CHINESE.match(ch) for ch in other):
            return other
    return None


def _decode_error_line(path: Path, codec_name: str) -> tuple[int, int]:
    """(line, byte column) of the first undecodable byte: newline bytes never sit inside a
    UTF-8 or GB18030 character, so each line decodes on its own."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and codec_name == "utf-8-sig":
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                raw.decode(codec_name.replace("-sig", ""))
            except UnicodeDecodeError as exc:
                return number, exc.start + 1
    return 0, 0


class CsvFile:
    """One extract file: ``header`` after opening, then (line, fields) per record.

    ``encoding`` None means undeclared: UTF-8, and a file whose text reads better as GB18030
    than as UTF-8 fails rather than loading as mojibake. Line numbers count the header as line
    1; a record spanning lines is numbered by its first line."""

    def __init__(self, path: Path, required: tuple[str, ...], encoding: str | None = None,
                 optional: bool = False):
        self.path, self.required, self.optional = path, required, optional
        self.declared = encoding is not None
        self.encoding = encoding or "utf-8"
        self.codec = codec(self.encoding)
        self.header: list[str] = []

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        name = self.path.name
        suspect = chinese = 0
        example = None
        try:
            with self.path.open("r", encoding=self.codec, newline="") as fh:
                reader = csv.reader(fh, strict=True)  # broken quoting is an error, not data
                first = next((r for r in reader if r), None)  # blank lines before it are none
                if first is None:
                    # The text reader drops a truncated BOM (b"\xef") at the end of the file
                    # without a word: a file with no record must still decode whole.
                    self.path.read_bytes().decode(self.codec)
                    if self.optional:  # 0 bytes, or blank lines only: no rows
                        return
                    raise FileError(f"{name}: the file is empty (no header row); deliver it "
                                    f"with its header row {', '.join(self.required)}")
                self.header = [h.strip() for h in first]
                self._check_header()
                line = reader.line_num
                for fields in reader:
                    start, line = line + 1, reader.line_num
                    if not fields:  # a blank line is no record
                        continue
                    if not self.declared:
                        joined = ",".join(fields)
                        if not joined.isascii():
                            if _CHINESE.search(joined):
                                chinese += 1
                            elif (other := reads_as_gb18030(joined)) is not None:
                                suspect += 1
                                example = example or (start, joined, other)
                    yield start, fields
        except UnicodeDecodeError:
            at, column = _decode_error_line(self.path, self.codec)
            hint = ("if the file is GB18030/GBK, set encoding gb18030 (run conf 'encoding' or "
                    "the Airflow variable arrears_encoding)" if self.codec != "gb18030" else
                    "ask the billing team for a GB18030 export, or set the right encoding")
            raise FileError(f"{name}: line {at}, byte {column}: not valid {self.encoding}; "
                            f"{hint}") from None
        except csv.Error as exc:
            raise FileError(f"{name}: line {reader.line_num}: cannot be parsed as CSV ({exc}); "
                            f"ask the billing team to re-export the file with every value that "
                            f"holds a quote, comma or line break quoted") from None
        self._check_plausible(suspect, chinese, example)

    def _check_plausible(self, suspect: int, chinese: int, example) -> None:
        """An undeclared file with more rows that read as GB18030 mojibake than rows with
        Chinese fails (the module's _SUSPECT_RUN)."""
        if suspect > chinese:
            at, text, other = example
            raise FileError(
                f"{self.path.name}: the encoding was not declared and the file reads as GB18030, "
                f"not UTF-8 (line {at}: {text[:60]!r} as UTF-8 is {other[:30]!r} as GB18030; "
                f"{suspect} such rows, {chinese} with Chinese in UTF-8): set encoding gb18030, or "
                f"utf-8 if the file really is UTF-8 (run conf 'encoding' or the Airflow variable "
                f"arrears_encoding)")

    def columns(self) -> Columns | None:
        """The whole file as string columns read by pyarrow's multi-threaded parser, when the
        file is plain enough that it reads exactly as rows() would read it: no quote, no NUL,
        no carriage return outside a CRLF, the header on line 1 with every required column.
        None otherwise: then rows() reads it (and raises what it raises).

        In such a file every line is one record, split at each comma, so a record's line number
        is its position; the rows not as wide as the header come back apart, with their line."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.csv as pcsv
        data = self.path.read_bytes()
        start = 0
        if self.codec == "utf-8-sig":
            start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        else:
            try:
                data = data.decode(self.codec).encode("utf-8")
            except UnicodeDecodeError:
                return None
        if data.find(b'"', start) >= 0 or data.find(b"\x00", start) >= 0:
            return None
        if data.find(b"\r", start) >= 0:
            if data.count(b"\r") != data.count(b"\r\n"):
                return None
            data = data.replace(b"\r\n", b"\n")
        stop = len(data)
        while stop > start and data[stop - 1] == 10:  # blank lines at the end are no records
            stop -= 1
        end = data.find(b"\n", start, stop)
        if end <= start:
            return None
        try:
            self.header = [h.strip() for h in data[start:end].decode("utf-8").split(",")]
        except UnicodeDecodeError:
            return None
        if any(c not in self.header for c in self.required) or len(set(self.header)) < len(self.header):
            return None
        body = memoryview(data)[end + 1:stop]
        width = len(self.header)
        names = [f"c{i}" for i in range(width)]
        odd: list[str] = []

        def other_width(row) -> str:
            odd.append(row.text)
            return "skip"
        try:
            table = pcsv.read_csv(
                pa.py_buffer(body),
                read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 24),
                parse_options=pcsv.ParseOptions(quote_char=False, double_quote=False,
                                                newlines_in_values=False, ignore_empty_lines=True,
                                                invalid_row_handler=other_width),
                convert_options=pcsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, null_values=[],
                    strings_can_be_null=False, quoted_strings_can_be_null=False))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # not UTF-8: rows() names the line and byte
            return None
        other: list[tuple[int, list[str]]] = []
        if odd or body[:1] == b"\n" or data.find(b"\n\n", end, stop) >= 0:
            # The parser skipped them without saying where: each line's commas do. A blank line
            # is no record (rows() skips it too) but has its number.
            split = bytes(body).split(b"\n")
            at = [i for i, line in enumerate(split) if not line or line.count(b",") != width - 1]
            try:
                other = [(i + 2, split[i].decode("utf-8").split(",")) for i in at if split[i]]
            except UnicodeDecodeError:  # rows() names the line and byte
                return None
            keep = np.ones(len(split), dtype=bool)
            keep[at] = False
            lines = np.flatnonzero(keep) + 2
        else:
            lines = np.arange(2, table.num_rows + 2)
        del data, body
        if not self.declared:
            self._check_plausible_columns(table, lines, other)
        return Columns(self.header, table, lines, other)

    def _check_plausible_columns(self, table, lines, other) -> None:
        """rows()'s mojibake count over whole columns: a row is non-ASCII when one of its fields
        is, Chinese when one of its fields holds a Chinese character."""
        import pyarrow as pa
        import pyarrow.compute as pc
        from arrears.ingest.screen import re2
        import numpy as np
        all_ascii = pa.array(np.ones(table.num_rows, dtype=bool))
        chinese = pa.array(np.zeros(table.num_rows, dtype=bool))
        for values in table.columns:
            non_ascii = pc.invert(pc.string_is_ascii(values))
            if not pc.any(non_ascii).as_py():
                continue
            all_ascii = pc.and_(all_ascii, pc.invert(non_ascii))
            chinese = pc.or_(chinese, pc.match_substring_regex(values, re2(_CHINESE.pattern)))
        maybe = pc.indices_nonzero(pc.and_(pc.invert(all_ascii), pc.invert(chinese)))
        rows = [(int(lines[i]), list(r.values()))
                for i, r in zip(maybe.to_pylist(), table.take(maybe).to_pylist())]
        count_chinese = pc.sum(chinese).as_py() or 0
        suspect, example = 0, None
        for line, fields in sorted(rows + other):
            joined = ",".join(fields)
            if joined.isascii():
                continue
            if _CHINESE.search(joined):
                count_chinese += 1
            elif (reading := reads_as_gb18030(joined)) is not None:
                suspect += 1
                example = example or (line, joined, reading)
        self._check_plausible(suspect, count_chinese, example)

    def _check_header(self) -> None:
        name = self.path.name
        missing = [c for c in self.required if c not in self.header]
        if missing:
            raise FileError(f"{name}: line 1: required column(s) {', '.join(missing)} missing "
                            f"(header has: {', '.join(self.header)[:300]}); ask the billing team "
                            f"for the file with every required column")
        twice = sorted({h for h in self.header if h and self.header.count(h) > 1})
        if twice:
            raise FileError(f"{name}: line 1: column(s) {', '.join(twice)} appear more than once "
                            f"in the header, so which value counts is unclear; re-deliver the "
                            f"file with each column once")

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
        if suspect > chinese:
            at, text, other = example
            raise FileError(
                f"{name}: the encoding was not declared and the file reads as GB18030, not UTF-8 "
                f"(line {at}: {text[:60]!r} as UTF-8 is {other[:30]!r} as GB18030; {suspect} such "
                f"rows, {chinese} with Chinese in UTF-8): set encoding gb18030, or utf-8 if the "
                f"file really is UTF-8 (run conf 'encoding' or the Airflow variable "
                f"arrears_encoding)")

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

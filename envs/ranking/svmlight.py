"""Reading one LETOR svmlight file (``rel qid:Q id:value ... # comment``), every line checked.

scikit-learn's parser does the reading. What it lets through is checked on its output, for
every row at once: each data line must carry ``qid:`` (scikit-learn skips a missing one, so
the query ids shift and documents land in the wrong queries), a relevance grade that is an
integer from 0 to :data:`MAX_LABEL` (gains are ``2**label - 1``: LETOR grades are 0..4, and
a grade of 1,024 makes an infinite reward), and feature values that are finite in float32
(one NaN or inf spreads through per-query normalisation and every score). A problem, or an
error of scikit-learn's (which names no line), raises :class:`LETORFormatError` naming the
file, the 1-based line and the fix; only then are the lines walked in Python, to find the
first bad one, so a good file costs one scikit-learn parse and one fast byte scan.

Accepted as LETOR users expect: a UTF-8 byte-order mark (skipped; Windows editors write
one), and lines ending in ``\\n``, ``\\r\\n`` or ``\\r`` (Python's universal newlines:
scikit-learn alone reads a ``\\r``-only file as one line and silently drops everything
after a ``#``). Refused: feature id 0 (LETOR ids start at 1: a 0-based file would shift
every feature), feature ids that do not increase along a line, and ``QID:``. The svmlight
format and every LETOR / MSLR / Yahoo / Istella release spell it ``qid:``, and the other
readers users compare with (scikit-learn, XGBoost) accept only that, so a file we
accepted would fail there.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from scipy import sparse

#: The largest relevance grade accepted: gains ``2**label - 1`` stay exact and finite.
MAX_LABEL = 31

#: The largest feature id scikit-learn can store (a C int).
_MAX_FEATURE_ID = 2**31 - 1

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_BOM = b"\xef\xbb\xbf"
_CHUNK_BYTES = 1 << 24
_EXAMPLE = "'2 qid:10 1:0.5 3:1.2'"


class LETORFormatError(ValueError):
    """A LETOR file that cannot be read as it is. ``path`` is the file and ``line`` the
    1-based line of the problem (``None`` when it concerns the whole file)."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line


def read_svmlight(
    file: Path, n_features: int | None = None
) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    """Features (CSR float32), relevance grades (int64) and query ids (int64) of every data
    line of ``file``, in file order, all checked.

    Feature ids are 1-based. The matrix has ``n_features`` columns, or as many as the
    largest id used when ``n_features`` is None. ``.gz`` and ``.bz2`` files are
    decompressed, as scikit-learn does.
    """
    from sklearn.datasets import load_svmlight_file

    layout = _layout(file)
    with _lines(file, *layout) as lines:
        try:
            x, y, qid = load_svmlight_file(lines, zero_based=False, query_id=True)
        except (ValueError, OverflowError) as exc:
            raise _locate(file, layout, n_features, f"scikit-learn cannot read it: {exc}") from exc
    if x.shape[0] == 0:
        raise LETORFormatError(
            file,
            None,
            f"no data lines (an empty file or only comments); expected lines like {_EXAMPLE}",
        )
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below
        x = x.astype(np.float32)
    if (
        len(qid) != x.shape[0]
        or not np.all((y >= 0) & (y <= MAX_LABEL) & (y == np.round(y)))
        or not np.all(np.isfinite(x.data))
        or (n_features is not None and x.shape[1] > n_features)
    ):
        raise _locate(file, layout, n_features, "the rows read do not pass the checks")
    if n_features is not None:
        x.resize((x.shape[0], n_features))
    return x, y.astype(np.int64), np.asarray(qid, dtype=np.int64)


def _open(file: Path) -> BinaryIO:
    if file.suffix == ".gz":
        return gzip.open(file, "rb")
    if file.suffix == ".bz2":
        return bz2.open(file, "rb")
    return open(file, "rb")


def _layout(file: Path) -> tuple[bool, bool]:
    """Whether ``file`` starts with a UTF-8 byte-order mark, and whether some line ends in
    a lone ``\\r``; counted in large chunks, at the speed of reading the file."""
    with _open(file) as f:
        head = f.read(len(_BOM))
        bom = head == _BOM
        pending = b"" if bom else head
        while chunk := f.read(_CHUNK_BYTES):
            data = pending + chunk
            # a '\r' at the end of a chunk may pair with a '\n' at the start of the next
            pending = b"\r" if data.endswith(b"\r") else b""
            data = data[: len(data) - len(pending)]
            if data.count(b"\r") != data.count(b"\r\n"):
                return bom, True
        return bom, pending.count(b"\r") != pending.count(b"\r\n")


@contextlib.contextmanager
def _lines(file: Path, bom: bool, lone_cr: bool) -> Iterator[BinaryIO]:
    """``file`` as a binary stream of ``\\n``-terminated lines: the byte-order mark
    skipped, ``\\r`` and ``\\r\\n`` line ends made ``\\n`` (in memory: ``\\r``-only files
    are rare and small)."""
    with _open(file) as f:
        if bom:
            f.read(len(_BOM))
        if lone_cr:
            data = f.read().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            yield io.BytesIO(data)
        else:
            yield f


def _locate(
    file: Path, layout: tuple[bool, bool], n_features: int | None, unlocated: str
) -> LETORFormatError:
    """The error for the first bad line of ``file``, or for the whole file with
    ``unlocated`` as its problem when no line is at fault."""
    with _lines(file, *layout) as lines:
        for number, raw in enumerate(lines, start=1):
            problem = _line_problem(raw.split(b"#", 1)[0].split(), n_features)
            if problem is not None:
                return LETORFormatError(file, number, problem)
    return LETORFormatError(file, None, unlocated)


def _line_problem(fields: list[bytes], n_features: int | None) -> str | None:
    """What is wrong with one data line (its fields, comment removed), and the fix; None
    when it is good or blank."""
    if not fields:
        return None
    label_text, *rest = fields
    label = _number(label_text)
    if label is None:
        return (
            f"the label {_show(label_text)} is not a number; a line starts with the "
            f"relevance grade, as in {_EXAMPLE}"
        )
    if not (label.is_integer() and 0 <= label <= MAX_LABEL):
        return (
            f"relevance label {_show(label_text)} is not an integer grade from 0 to "
            f"{MAX_LABEL}; gains are 2^label - 1, so map the labels to small grades "
            "(LETOR's are 0..4)"
        )
    if not rest or not rest[0].lower().startswith(b"qid:"):
        return (
            "no 'qid:' field right after the label; ranking needs the query id of every "
            f"document there, as in {_EXAMPLE}"
        )
    qid_field, *features = rest
    if not qid_field.startswith(b"qid:"):
        return (
            f"{_show(qid_field)}: write the query id field in lower case, 'qid:', as "
            "svmlight and every LETOR release do"
        )
    if _integer(qid_field[4:]) is None:
        return f"query id {_show(qid_field)} is not an integer; write it as in {_EXAMPLE}"
    previous = 0
    for field in features:
        id_text, colon, value_text = field.partition(b":")
        feature = _integer(id_text)
        if not colon or feature is None:
            return f"{_show(field)} is not a feature 'id:value' pair, as in {_EXAMPLE}"
        if feature < 1:
            return (
                f"feature id {feature}: LETOR feature ids start at 1; if this file numbers "
                "features from 0, add 1 to every id"
            )
        if feature == previous:
            return f"feature id {feature} appears twice; keep one value per feature"
        if feature < previous:
            return (
                f"feature id {feature} follows {previous}: ids must increase along a line; "
                "sort each line's 'id:value' pairs by id"
            )
        if n_features is not None and feature > n_features:
            return (
                f"feature id {feature} is larger than n_features={n_features}; pass a larger "
                "n_features, or None for the largest id used"
            )
        if feature > _MAX_FEATURE_ID:
            return f"feature id {feature} is too large (at most {_MAX_FEATURE_ID}); fix the id"
        value = _number(value_text)
        if value is None:
            return f"feature {feature} has value {_show(value_text)}, which is not a number"
        if not _finite_float32(value):
            return (
                f"feature {feature} has value {_show(value_text)}, which is not a finite "
                "float32; replace missing or overflowing values by finite numbers (e.g. 0), "
                "since a NaN or inf spoils per-query normalisation and every score"
            )
        previous = feature
    return None


def _number(text: bytes) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _integer(text: bytes) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _finite_float32(value: float) -> bool:
    if not math.isfinite(value):
        return False
    if abs(value) <= _FLOAT32_MAX:
        return True
    with np.errstate(over="ignore"):  # values just above the largest float32 round down to it
        return bool(np.isfinite(np.float32(value)))


def _show(text: bytes) -> str:
    """A field as the user wrote it, quoted, cut short if long."""
    shown = text.decode("utf-8", errors="replace")
    return repr(shown if len(shown) <= 40 else shown[:40] + "...")

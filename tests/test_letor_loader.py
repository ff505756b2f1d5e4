"""The LETOR loader checks every line and names the file and line of every problem; the
ranking benchmark checks --letor before it trains."""

from __future__ import annotations

import gzip
import importlib.util
import io
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_svmlight_file

from lfi_gym.envs.ranking import load_letor, synthetic_splits
from lfi_gym.envs.ranking.svmlight import MAX_LABEL, LETORFormatError, read_svmlight

# A comment and a blank line first, so that line numbers count every line, not data lines.
GOOD = """# header
2 qid:7 1:0.5 3:1.5 # doc A

1 qid:7 2:3.0
0 qid:3 1:2.0 3:1.0
1 qid:3 2:1.0
"""
GOOD_LINES = GOOD.splitlines()


def _with_line(number: int, text: str) -> str:
    """GOOD with its line ``number`` (1-based) replaced by ``text``."""
    lines = list(GOOD_LINES)
    lines[number - 1] = text
    return "\n".join(lines) + "\n"


def _file(tmp_path: Path, text: str | bytes, name: str = "train.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _refused(path: Path, line: int, fragment: str, **kwargs) -> LETORFormatError:
    with pytest.raises(LETORFormatError) as caught:
        load_letor(path, **kwargs)
    error = caught.value
    assert error.path == path and error.line == line
    message = str(error)
    assert message.startswith(f"{path}, line {line}: "), message
    assert fragment in message, message
    return error


# -- every line is checked ---------------------------------------------------------------------


def test_good_file_loads_with_file_order_and_sparse_zeros(tmp_path: Path) -> None:
    train = load_letor(_file(tmp_path, GOOD))["train"]
    assert list(train.qids) == [7, 3] and list(train.sizes) == [2, 2]
    assert list(train.relevance) == [2, 1, 0, 1]
    np.testing.assert_array_equal(train.features[0], [0.5, 0.0, 1.5])
    np.testing.assert_array_equal(train.features[1], [0.0, 3.0, 0.0])


def test_a_line_without_qid_in_the_middle_no_longer_loads_silently(tmp_path: Path) -> None:
    text = _with_line(4, "1 2:3.0")
    # the hazard: scikit-learn alone returns fewer query ids than rows, with no error, so
    # the ids shift onto the wrong documents
    x, _, qid = load_svmlight_file(io.BytesIO(text.encode()), zero_based=False, query_id=True)
    assert x.shape[0] == 4 and len(qid) == 3
    _refused(_file(tmp_path, text), 4, "no 'qid:' field right after the label")


def test_qid_after_the_features_is_refused_with_its_line(tmp_path: Path) -> None:
    _refused(_file(tmp_path, _with_line(5, "0 1:2.0 3:1.0 qid:3")), 5, "no 'qid:' field")


@pytest.mark.parametrize("label", ["1000", "1024", "32", "-1", "2.5", "nan", "inf"])
def test_labels_must_be_integer_grades_from_0_to_31(tmp_path: Path, label: str) -> None:
    path = _file(tmp_path, _with_line(6, f"{label} qid:3 2:1.0"))
    _refused(path, 6, f"relevance label '{label}' is not an integer grade from 0 to 31")


def test_grades_0_to_31_are_accepted(tmp_path: Path) -> None:
    text = _with_line(6, f"{MAX_LABEL} qid:3 2:1.0").replace("0 qid:3", "0.0 qid:3")
    relevance = load_letor(_file(tmp_path, text))["train"].relevance
    assert list(relevance) == [2, 1, 0, MAX_LABEL] and relevance.dtype == np.int64


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e39"])
def test_features_must_be_finite_in_float32(tmp_path: Path, value: str) -> None:
    # 1e39 is finite as float64 but overflows the float32 features to inf
    path = _file(tmp_path, _with_line(5, f"0 qid:3 1:2.0 3:{value}"))
    error = _refused(path, 5, f"feature 3 has value '{value}', which is not a finite float32")
    assert "normalisation" in str(error)


def test_feature_id_0_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = _file(tmp_path, _with_line(4, "1 qid:7 0:1.0 2:3.0"))
    _refused(path, 4, "feature id 0: LETOR feature ids start at 1; if this file numbers")


def test_unsorted_and_repeated_feature_ids_are_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, _with_line(5, "0 qid:3 3:1.0 1:2.0"))
    _refused(path, 5, "feature id 1 follows 3: ids must increase along a line; sort each")
    path = _file(tmp_path, _with_line(5, "0 qid:3 1:1.0 1:2.0"), "repeated.txt")
    _refused(path, 5, "feature id 1 appears twice")


def test_upper_case_qid_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = _file(tmp_path, _with_line(2, "2 QID:7 1:0.5 3:1.5"))
    _refused(path, 2, "'QID:7': write the query id field in lower case, 'qid:'")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("two qid:3 1:1.0", "the label 'two' is not a number"),
        ("0 qid:x3 1:1.0", "query id 'qid:x3' is not an integer"),
        ("0 qid:3 1:1.0 3", "'3' is not a feature 'id:value' pair"),
        ("0 qid:3 1:abc", "feature 1 has value 'abc', which is not a number"),
    ],
)
def test_other_malformed_lines_name_their_line(tmp_path: Path, line: str, fragment: str) -> None:
    _refused(_file(tmp_path, _with_line(5, line)), 5, fragment)


def test_a_feature_id_beyond_n_features_names_its_line(tmp_path: Path) -> None:
    path = _file(tmp_path, GOOD)
    _refused(path, 2, "feature id 3 is larger than n_features=2", n_features=2)
    assert load_letor(path, n_features=5)["train"].n_features == 5


def test_a_file_without_data_lines_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "# only a comment\n\n")
    with pytest.raises(LETORFormatError, match="no data lines") as caught:
        load_letor(path)
    assert caught.value.path == path and caught.value.line is None


# -- accepted layouts ------------------------------------------------------------------------


def _same_queries(a, b) -> None:
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.relevance, b.relevance)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.qids, b.qids)


@pytest.mark.parametrize("ending", ["\r", "\r\n"])
def test_cr_and_crlf_line_endings_read_like_lf(tmp_path: Path, ending: str) -> None:
    reference = load_letor(_file(tmp_path, GOOD, "lf.txt"))["train"]
    # the '# doc A' comment: scikit-learn alone reads a CR-only file as one line and drops
    # everything after the first '#'
    path = _file(tmp_path, GOOD.replace("\n", ending), "other.txt")
    _same_queries(load_letor(path)["train"], reference)
    bad = _with_line(5, "0 QID:3 1:2.0").replace("\n", ending)
    _refused(_file(tmp_path, bad, "bad.txt"), 5, "lower case")


def test_a_lone_cr_between_lf_lines_ends_a_line(tmp_path: Path) -> None:
    reference = load_letor(_file(tmp_path, GOOD, "lf.txt"))["train"]
    mixed = GOOD.replace("# doc A\n", "# doc A\r", 1)
    _same_queries(load_letor(_file(tmp_path, mixed, "mixed.txt"))["train"], reference)


def test_a_utf8_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    reference = load_letor(_file(tmp_path, GOOD, "plain.txt"))["train"]
    bom = b"\xef\xbb\xbf"
    _same_queries(load_letor(_file(tmp_path, bom + GOOD.encode(), "bom.txt"))["train"], reference)
    no_comment = "\n".join(GOOD_LINES[1:]) + "\n"  # the mark right before a label
    with_bom = _file(tmp_path, bom + no_comment.encode(), "bom_label.txt")
    assert list(load_letor(with_bom)["train"].relevance) == [2, 1, 0, 1]
    bad = bom + _with_line(3, "0 qid:3 2:nan").encode()
    _refused(_file(tmp_path, bad, "bom_bad.txt"), 3, "not a finite float32")


def test_gzip_files_are_read_and_checked(tmp_path: Path) -> None:
    reference = load_letor(_file(tmp_path, GOOD))["train"]
    path = tmp_path / "train.txt.gz"
    path.write_bytes(gzip.compress(GOOD.encode()))
    _same_queries(load_letor(path)["train"], reference)
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(gzip.compress(_with_line(4, "1 2:3.0").encode()))
    _refused(bad, 4, "no 'qid:'")


def test_read_svmlight_pads_to_n_features_and_a_shared_file_is_read_once(tmp_path: Path) -> None:
    x, relevance, qid = read_svmlight(_file(tmp_path, GOOD), n_features=6)
    assert x.shape == (4, 6) and x.dtype == np.float32
    assert list(relevance) == [2, 1, 0, 1] and list(qid) == [7, 7, 3, 3]
    splits = load_letor(tmp_path / "train.txt")  # one file for every split
    assert splits["train"] is splits["validation"] is splits["test"]


# -- the benchmark -------------------------------------------------------------------------


def _benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ranking.py"
    spec = importlib.util.spec_from_file_location("ranking_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def benchmark(monkeypatch):
    module = _benchmark()

    def no_training(*args, **kwargs):
        raise AssertionError("training started before --letor was checked")

    monkeypatch.setattr(module, "run", no_training)
    monkeypatch.setattr(module, "lambdamart_ndcg", no_training)
    return module


def _exit_message(benchmark, argv: list[str], capsys) -> str:
    start = time.perf_counter()
    with pytest.raises(SystemExit) as caught:
        benchmark.main(argv)
    assert caught.value.code == 2
    assert time.perf_counter() - start < 30
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_benchmark_refuses_folds_without_fold_before_training(
    benchmark, tmp_path: Path, capsys
) -> None:
    (tmp_path / "Fold1").mkdir()
    _file(tmp_path / "Fold1", GOOD)
    message = _exit_message(benchmark, ["--letor", str(tmp_path)], capsys)
    assert "it has Fold1: pass --fold 1" in message and "fold=1" not in message


def test_benchmark_refuses_a_bad_line_before_training(benchmark, tmp_path: Path, capsys) -> None:
    path = _file(tmp_path, _with_line(4, "1024 qid:7 2:3.0"))
    message = _exit_message(benchmark, ["--letor", str(path)], capsys)
    assert f"{path}, line 4: relevance label '1024'" in message


def test_benchmark_hints_name_its_flags(benchmark, tmp_path: Path, capsys) -> None:
    _file(tmp_path, GOOD, "train.txt")
    _file(tmp_path, GOOD.replace("3:1.5", "9:1.5"), "test.txt")
    message = _exit_message(benchmark, ["--letor", str(tmp_path)], capsys)
    assert "feature count mismatch" in message and "pass --n-features 9" in message
    message = _exit_message(benchmark, ["--letor", str(tmp_path), "--n-features", "4"], capsys)
    assert "line 2: feature id 9 is larger than --n-features 4" in message
    message = _exit_message(benchmark, ["--fold", "1"], capsys)
    assert "--fold and --n-features apply to --letor data" in message


def test_benchmark_warns_without_a_validation_split(benchmark, tmp_path: Path, capsys) -> None:
    # the benchmark's env ranks 10 positions: queries need at least 10 documents
    ten_per_query = "".join(f"{i % 3} qid:{i // 10} 1:{i} 3:{i % 7}\n" for i in range(30))
    _file(tmp_path, ten_per_query, "train.txt")
    _file(tmp_path, ten_per_query, "test.txt")
    args = benchmark.parse_args(["--letor", str(tmp_path), "--n-features", "5"])
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith(f"warning: no vali.txt in {tmp_path}")
    assert "without early stopping" in warning[0]
    assert args.letor_kwargs == {
        "path": str(tmp_path),
        "fold": None,
        "n_features": 5,
        "normalize": "query",
    }
    _file(tmp_path, ten_per_query, "vali.txt")
    benchmark.parse_args(["--letor", str(tmp_path)])
    assert capsys.readouterr().err == ""
    benchmark.parse_args(["--letor", str(tmp_path / "train.txt")])
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "serves as train, validation and test" in warning[0]


def test_lambdamart_fits_without_a_lightgbm_deprecation_warning() -> None:
    splits = synthetic_splits((40, 20, 20), n_features=4, max_candidates=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ndcg = _benchmark().lambdamart_ndcg(splits)
    assert 0.0 < ndcg <= 1.0

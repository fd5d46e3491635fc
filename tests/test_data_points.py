"""handgrad.data.points: the CSV of your own 2-D points, its features and its splits."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from handgrad.data import points as pts
from handgrad.data.points import (
    MAX_POINTS,
    PointsError,
    interleaved_split,
    make_features,
    parse_points_csv,
    points_csv,
    read_points_csv,
    write_points_csv,
)


def test_examples_run() -> None:
    finder, runner = doctest.DocTestFinder(exclude_empty=True), doctest.DocTestRunner()
    report: list[str] = []
    for test in finder.find(pts, pts.__name__, globs={"np": np, **vars(pts)}):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


# -- reading ---------------------------------------------------------------------------------
def test_a_header_is_optional_and_integer_labels_are_the_classes() -> None:
    with_header = parse_points_csv("x1,x2,label\n0.5,1,1\n-1,0,0\n2,2,2\n")
    without = parse_points_csv(b"0.5,1,1\n-1,0,0\n2,2,2\n")
    for d in (with_header, without):
        assert d.X.dtype == np.float32 and d.y.dtype == np.int64
        assert d.X.tolist() == [[0.5, 1.0], [-1.0, 0.0], [2.0, 2.0]]
        assert d.y.tolist() == [1, 0, 2]  # 1 first, still class 1
        assert d.classes == ("0", "1", "2")


def test_names_and_other_integers_are_numbered_by_first_appearance() -> None:
    d = parse_points_csv("a,b,c\n0,0,dog\n1,1,cat\n2,2,dog\n3,3,bird\n")
    assert d.y.tolist() == [0, 1, 0, 2] and d.classes == ("dog", "cat", "bird")
    d = parse_points_csv("0,0,-1\n1,1,1\n2,2,-1\n")  # -1 is no class number
    assert d.y.tolist() == [0, 1, 0] and d.classes == ("-1", "1")
    d = parse_points_csv("0,0,7\n1,1,9\n")
    assert d.y.tolist() == [0, 1] and d.classes == ("7", "9")


def test_bom_blank_lines_spaces_crlf_and_quotes_are_read() -> None:
    text = '\ufeffx1, x2 ,label\r\n\r\n 0.25 ,-3e-1, "big, red"\r\n1,2,small\r\n\r\n'
    d = parse_points_csv(text.encode("utf-8"))
    assert d.X.tolist() == [[0.25, np.float32(-0.3)], [1.0, 2.0]]
    assert d.classes == ("big, red", "small")


BAD = [
    ("x1,x2,label\n1,2,0\n3,4\n", "line 3: expected 3 columns (x1,x2,label), got 2"),
    ("1,2,0,9\n", "line 1: expected 3 columns (x1,x2,label), got 4"),
    ("x1,x2,label\n1,2,0\n1,abc,1\n", "line 3: x2 is not a number: 'abc'"),
    ("1,2,0\nnan,1,0\n", "line 2: x1 is not a finite number: 'nan'"),
    ("1,2,0\n1,inf,0\n", "line 2: x2 is not a finite number: 'inf'"),
    ("1,2,0\n1,2,\n", "line 2: the label is empty"),
    ("".join(f"{i},0,{c}\n" for i, c in enumerate("abcdefg")), "line 7: a 7th class 'g'"),
    ("", "no points"),
    ("x1,x2,label\n\n", "no points"),
    ('1,2,"0\n', "line 1"),  # an unclosed quote: the csv module's own error
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_file_names_the_line_and_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PointsError, match=r"^points\.csv") as info:
        parse_points_csv(text, name="points.csv")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_not_utf8_too_many_points_and_too_many_bytes() -> None:
    with pytest.raises(PointsError, match=r"^CSV: not UTF-8 \(line 3: invalid start byte\)"):
        parse_points_csv(b"1,2,a\n3,4,b\n5,6,\xff\n")
    rows = "".join(f"{i % 7},{i % 5},{i % 3}\n" for i in range(MAX_POINTS + 1))
    with pytest.raises(PointsError, match=f"line {MAX_POINTS + 2}: more than 20,000 points"):
        parse_points_csv("x1,x2,label\n" + rows)
    assert len(parse_points_csv(rows[: rows.rindex("\n", 0, -1) + 1])) == MAX_POINTS
    with pytest.raises(PointsError, match="bytes; at most 2 MiB"):
        parse_points_csv(b"1,2,0\n" * (pts.MAX_BYTES // 6 + 1))


def test_read_a_missing_file_is_one_line(tmp_path) -> None:
    with pytest.raises(PointsError, match="cannot read it"):
        read_points_csv(tmp_path / "nope.csv")


# -- writing ---------------------------------------------------------------------------------
def test_written_points_read_back_bit_for_bit(tmp_path) -> None:
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((500, 2)) * 10.0 ** rng.integers(-6, 4, (500, 2))).astype(np.float32)
    y = rng.integers(0, 4, 500)
    path = write_points_csv(tmp_path / "p.csv", X, y)
    back = read_points_csv(path)
    np.testing.assert_array_equal(back.X, X)
    np.testing.assert_array_equal(back.y, y)
    named = parse_points_csv(points_csv(X[:3], np.array([1, 0, 1]), ["cat", "dog"]))
    assert named.classes == ("dog", "cat") and named.y.tolist() == [0, 1, 0]
    assert points_csv(np.array([[0.1, 2.0]]), np.array([0])) == "x1,x2,label\n0.1,2,0\n"


# -- features and splits ----------------------------------------------------------------------
def test_features_are_the_documented_functions() -> None:
    P = np.array([[0.5, -0.25], [1.0, 2.0]], dtype=np.float32)
    F = make_features(P, ["x1", "x2", "x1^2", "x2^2", "x1x2", "sin_x1", "sin_x2"])
    x1, x2 = P[:, 0].astype(np.float64), P[:, 1].astype(np.float64)
    expected = [x1, x2, x1**2, x2**2, x1 * x2, np.sin(np.pi * x1), np.sin(np.pi * x2)]
    assert F.dtype == np.float32
    np.testing.assert_allclose(F, np.stack(expected, axis=1), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="unknown feature 'x3'"):
        make_features(P, ["x3"])


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.7, 0.9, 1.0])
def test_the_interleaved_split_is_even_and_stable(ratio: float) -> None:
    test = interleaved_split(1000, ratio)
    assert not test[0]
    assert abs(test.sum() - round(1000 * (1 - ratio))) <= 1
    for n in (1, 7, 333):  # adding points at the end never moves the others
        assert np.array_equal(interleaved_split(n, ratio), test[:n])
    gaps = np.diff(np.flatnonzero(~test))  # train points come in even steps
    assert ratio == 1.0 or gaps.max() - gaps.min() <= 1 + int(ratio < 0.5) * 8

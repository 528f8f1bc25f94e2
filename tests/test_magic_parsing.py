"""ddb_magic's cell parsing: options, capture, templates and :name parameters (no cluster)."""
import pytest

from ddb_magic.kernel import translate
from ddb_magic.parsing import (UsageProblem, bind_parameters, named_parameters, parse_cell,
                               parse_groups, render_template, split_statements)


def test_options_and_sql():
    o = parse_cell("--node 2 --level none --transaction", "SELECT 1")
    assert (o.node, o.level, o.transaction, o.sql) == (2, "none", True, "SELECT 1")
    o = parse_cell("--level=linearizable SELECT 2")
    assert (o.level, o.sql) == ("linearizable", "SELECT 2")


def test_capture_forms():
    o = parse_cell("x <<", "SELECT 1")
    assert (o.target, o.display_too, o.sql) == ("x", False, "SELECT 1")
    o = parse_cell("--name b df= << SELECT 1")
    assert (o.name, o.target, o.display_too, o.sql) == ("b", "df", True, "SELECT 1")
    o = parse_cell("", "res << SELECT 1")
    assert o.target == "res"


def test_bad_options_are_usage_problems():
    with pytest.raises(UsageProblem, match="unknown level"):
        parse_cell("--level fast", "SELECT 1")
    with pytest.raises(UsageProblem, match="unknown option --nod"):
        parse_cell("--nod 2", "SELECT 1")
    with pytest.raises(UsageProblem, match="bad value"):
        parse_cell("--node two", "SELECT 1")


def test_sql_comment_is_not_an_option():
    o = parse_cell("", "-- a comment\nSELECT 1")
    assert o.sql.startswith("-- a comment")


def test_named_parameters_skip_strings_and_comments():
    sql = "SELECT ':no', \":nope\", x FROM t -- :c\n WHERE a = :a AND b = :b /* :d */ AND a2 = :a"
    assert named_parameters(sql) == ["a", "b"]
    assert bind_parameters(sql, {"a": 1, "b": "x"}) == {"a": 1, "b": "x"}
    with pytest.raises(UsageProblem, match=":b is not defined"):
        bind_parameters(sql, {"a": 1})


def test_numpy_scalars_bind_as_python_values():
    np = pytest.importorskip("numpy")
    assert bind_parameters("SELECT :n", {"n": np.int64(3)}) == {"n": 3}


def test_templates():
    assert render_template("SELECT * FROM {{t}} LIMIT {{ n + 1 }}", {"t": "x", "n": 2}) == \
        "SELECT * FROM x LIMIT 3"
    with pytest.raises(UsageProblem, match="template"):
        render_template("{{missing}}", {})


def test_split_statements():
    assert split_statements("SELECT 1; SELECT ';';\n-- only a comment\n") == ["SELECT 1;", "SELECT ';';"]


def test_groups():
    assert parse_groups("1,2 / 3") == [[1, 2], [3]]
    assert parse_groups("1 | 2 3") == [[1], [2, 3]]
    with pytest.raises(UsageProblem):
        parse_groups("1,2")
    with pytest.raises(UsageProblem, match="two groups"):
        parse_groups("1,2 / 2")


def test_kernel_translation():
    assert translate("SELECT 1") == "get_ipython().run_cell_magic('ddb', '', 'SELECT 1')"
    assert translate("%ddb launch") == "%ddb launch"
    assert translate("%ddb_kill 2\nSELECT 1") == \
        "%ddb_kill 2\nget_ipython().run_cell_magic('ddb', '', 'SELECT 1')"
    assert translate("%%ddb --node 2\nSELECT 1") == "%%ddb --node 2\nSELECT 1"

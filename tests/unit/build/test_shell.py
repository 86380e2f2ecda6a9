"""Variable substitution in Dockerfile words (BuildKit's lexer rules)."""

from __future__ import annotations

import pytest

from dockyard.build.shell import ExpandError, ShellLex

ENV = {"PWD": "/home", "SHELL": "bash", "NULL": "", "SPACE": "a  b", "V": "1.2.3-rc"}

WORDS = [
    # quotes and escapes
    ("hello", "hello"), ("he'll'o", "hello"), ("he\\'llo", "he'llo"),
    ("abc\\tdef", "abctdef"), ('"abc\\tdef"', "abc\\tdef"), ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"), ("hello\\", "hello"), ("hello\\\\", "hello\\"),
    ('"hel\'lo"', "hel'lo"), ("'hello\\'", "hello\\"), ('"\'\'"', "''"),
    ("'\"hello\"'", '"hello"'), ("안'녕'하세요", "안녕하세요"),
    # plain variables
    ("$.", "$."), ("he$1x", "hex"), ("he$.x", "he$.x"), ("he$pwd.", "he."),
    ("he$PWD", "he/home"), ("he\\$PWD", "he$PWD"), ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"), ('"he\\\\$PWD"', "he\\/home"), ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"), ('"$PWD"', "/home"), ('"he\'$PWD\'"', "he'/home'"),
    ("\\${}", "${}"), ("\\${}aaa", "${}aaa"), ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"), ("'he${XX}'", "he${XX}"),
    # modifiers
    ("he${XXX:-000}xx", "he000xx"), ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"), ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"), ("he${NULL:-d}", "hed"), ("he${NULL-d}", "he"),
    ("he${XXX-d}", "hed"), ("he${PWD?}", "he/home"), ("he${PWD:?}", "he/home"),
    ("he${NULL?}", "he"), ("he${XXX:+${PWD}}xx", "hexx"), ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"), ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"), ("he${NULL+x}", "hex"), ("he${NULL:+x}", "he"),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"), ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
    # prefix, suffix, replacement
    ("${V#1.}", "2.3-rc"), ("${V##*.}", "3-rc"), ("${V#*.}", "2.3-rc"),
    ("${V%.*}", "1.2"), ("${V%%.*}", "1"), ("${V%-rc}", "1.2.3"), ("${V/./_}", "1_2.3-rc"),
    ("${V//./_}", "1_2_3-rc"), ("${V/x/y}", "1.2.3-rc"), ("${V/?/x}", "x.2.3-rc"),
    ("${XXX#a}", ""), ("${V#\\*}", "1.2.3-rc"),
    # spaces are kept inside one word
    ("a${SPACE}b", "aa  bb"),
]


@pytest.mark.parametrize(("word", "want"), WORDS)
def test_process_word(word, want):
    assert ShellLex().process_word(word, ENV) == want


ERRORS = [
    ("he'llo", "unexpected end of statement while looking for matching single-quote"),
    ("he\\\\'llo", "unexpected end of statement while looking for matching single-quote"),
    ('"hello', "unexpected end of statement while looking for matching double-quote"),
    ('"hello\\"', "unexpected end of statement while looking for matching double-quote"),
    ("${}", "syntax error: bad substitution"), ("he${:x}", "syntax error: bad substitution"),
    ("he${.}", "unsupported modifier (.) in substitution"),
    ("he${XXX:YYY}", "unsupported modifier (:Y) in substitution"),
    ("he${XXX?}", "XXX: is not allowed to be unset"),
    ("he${XXX?oops}", "XXX: oops"), ("he${XXX:?}", "XXX: is not allowed to be unset"),
    ("he${NULL:?}", "NULL: is not allowed to be empty"),
    ("he${PWD", "unsupported modifier (\ufffd) in substitution"),
    ("he${PWD:-x", "syntax error: missing '}'"),
    ("he${PWD:=000}xx", "unsupported modifier (:=) in substitution"),
    ("${V:#x}", "unsupported modifier (:#) in substitution"),
    ("${V/x", "syntax error: missing '/' in ${}"),
]


@pytest.mark.parametrize(("word", "reason"), ERRORS)
def test_process_word_errors(word, reason):
    with pytest.raises(ExpandError) as e:
        ShellLex().process_word(word, ENV)
    assert e.value.message.endswith(reason)
    assert e.value.message.startswith("failed to process ")
    assert e.value.status == 400


def test_error_quotes_the_word_as_go_does():
    with pytest.raises(ExpandError) as e:
        ShellLex().process_word('a"b\tc', {})
    assert e.value.message == ('failed to process "a\\"b\\tc": unexpected end of statement '
                               "while looking for matching double-quote")


WORD_SPLITS = [
    ("hello", ["hello"]), ("hello${hi}bye", ["hellobye"]),
    ("hello${space}bye", ["helloabc", "defbye"]), ('hello"${space}"bye', ["helloabc  defbye"]),
    ('hello "${space}"bye', ["hello", "abc  defbye"]), ("hello${leading}def", ["hello", "ab", "cdef"]),
    ('hello"${leading}" def', ["hello  ab c", "def"]), ("hello${trailing}", ["helloab", "c"]),
    ("hello${trailing}d", ["helloab", "c", "d"]), ('hello"${trailing}"d', ["helloab c   d"]),
    ('hello" there  "', ["hello there  "]), ("hello there     ", ["hello", "there"]),
    ("hello\\ there", ["hello there"]), ('hello\\" there', ['hello"', "there"]),
    ("hello'\\there'", ["hello\\there"]), ("hello'$there'", ["hello$there"]),
    ("80 443", ["80", "443"]),
]


@pytest.mark.parametrize(("word", "want"), WORD_SPLITS)
def test_process_words(word, want):
    env = {"space": "abc  def", "leading": "  ab c", "trailing": "ab c   "}
    assert ShellLex().process_words(word, env) == want


def test_backtick_escape_token():
    lex = ShellLex("`")
    assert lex.process_word("a`$PWD", ENV) == "a$PWD"
    assert lex.process_word("C:\\path\\$PWD", ENV) == "C:\\path\\/home"
    assert lex.process_word('"x`"y"', ENV) == 'x"y'


def test_heredoc_marker_is_left_alone():
    assert ShellLex().process_word("cat <<EOF", {}) == "cat <<EOF"
    assert ShellLex().process_word("a < b", {}) == "a < b"

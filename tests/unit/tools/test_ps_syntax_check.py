# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the PowerShell syntax gate (tools/ps_syntax_check.py)."""

from __future__ import annotations

import pathlib
import re

import pytest

from tools import ps_syntax_check

VALID = """\
#AnsibleRequires -CSharpUtil Ansible.Basic
$spec = @{ options = @{ name = @{ type = 'str'; required = $true } } }
$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
foreach ($item in @(1, 2)) {
    if ($item -gt 1) { $module.Result.count = $item }
}
$module.ExitJson()
"""

# The function body is never closed: the closing brace is missing at the end of line 4.
UNCLOSED_BRACE = """\
$a = 1
function Get-Thing {
    param([string]$Name)
    $Name
"""

# Line 2 holds an unfinished parameter list; the valid line 1 must not be blamed.
BROKEN_PARAM = '$ok = 1\nfunction f { param([string]$a\n  $b = (1 +\n}\n'


@pytest.fixture(scope="module")
def parser():
    return ps_syntax_check.make_parser()


def write(tmp_path: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "source",
    [VALID, "\ufeff" + VALID, "", "\n  \n", "# only a comment\n<# and a\n block #>\n"],
    ids=["module", "utf8-bom", "empty", "blank", "comments-only"],
)
def test_valid_source_has_no_problem(parser, source):
    assert ps_syntax_check.check_source(pathlib.Path("x.ps1"), source.encode(), parser) == []


@pytest.mark.parametrize(
    ("source", "line", "column", "kind"),
    [
        (UNCLOSED_BRACE, 4, 10, "missing }"),
        (BROKEN_PARAM, 2, 14, "syntax error"),
        # columns count characters, not UTF-8 bytes ("é" is two bytes)
        ('$t = "é"; function f { param([string]$a\n', 1, 11, "syntax error"),
    ],
    ids=["unclosed-brace", "broken-param", "non-ascii-column"],
)
def test_invalid_source_is_located(parser, source, line, column, kind):
    problems = ps_syntax_check.check_source(pathlib.Path("bad.ps1"), source.encode(), parser)

    assert problems
    assert (problems[0].line, problems[0].column, problems[0].kind) == (line, column, kind)
    assert str(problems[0]).startswith(f"bad.ps1:{line}:{column}: {kind}: ")


def test_allowlist_tolerates_matching_line_only(parser):
    source = BROKEN_PARAM.encode()

    assert ps_syntax_check.check_source(pathlib.Path("a.ps1"), source, parser, [re.compile(r"param\(")]) == []
    assert ps_syntax_check.check_source(pathlib.Path("a.ps1"), source, parser, [re.compile(r"\$ok")])


def test_load_allowlist_skips_comments_and_blanks(tmp_path):
    allowlist = write(tmp_path, "allow.txt", "# why\n\n  List`1\\[  \n")

    assert [p.pattern for p in ps_syntax_check.load_allowlist(allowlist)] == ["List`1\\["]
    assert ps_syntax_check.load_allowlist(tmp_path / "absent.txt") == []


def test_shipped_allowlist_is_valid():
    ps_syntax_check.load_allowlist(ps_syntax_check.DEFAULT_ALLOWLIST)


def test_main_reports_first_error_and_fails(tmp_path, capsys):
    write(tmp_path, "plugins/modules/good.ps1", VALID)
    write(tmp_path, "plugins/module_utils/Bad.psm1", UNCLOSED_BRACE)
    write(tmp_path, "plugins/modules/readme.txt", "not powershell {")
    empty_allowlist = write(tmp_path, "allow.txt", "")

    status = ps_syntax_check.main(["--allowlist", str(empty_allowlist), str(tmp_path / "plugins")])

    out = capsys.readouterr().out
    assert status == 1
    assert f"{tmp_path / 'plugins/module_utils/Bad.psm1'}:4:10: missing }}" in out
    assert "good.ps1" not in out
    assert "2 PowerShell file(s) checked, 1 with syntax errors" in out


def test_main_passes_on_valid_scripts(tmp_path, capsys):
    script = write(tmp_path, "ok.ps1", VALID)

    assert ps_syntax_check.main([str(script)]) == 0
    assert "1 PowerShell file(s) checked, 0 with syntax errors" in capsys.readouterr().out


def test_main_rejects_missing_path(tmp_path):
    with pytest.raises(SystemExit) as raised:
        ps_syntax_check.main([str(tmp_path / "nowhere")])
    assert raised.value.code == 2

"""The documentation stands on its own: every relative link in README.md and docs/*.md leads to a
file that exists, every line anchor into the tests lands in the test it names, every in-page
anchor names a heading, and nothing points outside the repository."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
MIGRATING = ROOT / "docs" / "MIGRATING.md"

LINK = re.compile(r"(?<!!)\[(?P<text>(?:[^\[\]]|\[[^\]]*\])*)\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
LINE_ANCHOR = re.compile(r"^L(?P<first>\d+)(?:-L(?P<last>\d+))?$")
DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?def\s+(?P<name>\w+)\s*\(")
TEST_NAME = re.compile(r"\btest_\w+")
OUTSIDE = ("SPEC.md", "../shared")


@dataclass(frozen=True)
class Link:
    document: Path
    line: int
    text: str
    target: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}: [{self.text}]({self.target})"


def prose_lines(document: Path) -> list[tuple[int, str]]:
    """The document's lines outside fenced code blocks, numbered from 1."""
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def links_in(document: Path) -> list[Link]:
    return [
        Link(document, number, match["text"], match["target"])
        for number, line in prose_lines(document)
        for match in LINK.finditer(line)
    ]


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) is not None


def relative_links() -> list[Link]:
    return [
        link
        for document in DOCUMENTS
        for link in links_in(document)
        if not is_external(link.target) and not link.target.startswith("#")
    ]


def page_anchors() -> list[Link]:
    return [link for document in DOCUMENTS for link in links_in(document) if link.target[:1] == "#"]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings_of(document: Path) -> set[str]:
    slugs: set[str] = set()
    for _, line in prose_lines(document):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match[1])
            anchor, n = base, 0
            while anchor in slugs:
                n += 1
                anchor = f"{base}-{n}"
            slugs.add(anchor)
    return slugs


def enclosing_function(lines: list[str], number: int) -> str | None:
    """The name of the innermost function whose body holds line `number` (1-based), or None.

    Walking up from the line, a `def` counts only if it is indented less than every non-blank line
    seen on the way (or is the line itself), so a helper defined earlier at the same level, or a
    function nested inside the test, is not taken for the test."""
    floor: int | None = None
    for index in range(number - 1, -1, -1):
        line = lines[index]
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        match = DEF.match(line)
        if match and (floor is None or indent < floor):
            return match["name"]
        if line.lstrip().startswith((")", "]", "}")):
            continue  # the end of a bracketed continuation (a signature's `) -> None:`)
        if floor is None or indent < floor:
            floor = indent
        if indent == 0 and not match and not line.lstrip().startswith(("@", "#")):
            return None  # a top-level statement: the line lies in no function
    return None


def test_the_documents_are_found() -> None:
    assert ROOT / "README.md" in DOCUMENTS
    assert MIGRATING in DOCUMENTS


def test_the_migration_guide_links_into_the_tests() -> None:
    targets = [link.target for link in links_in(MIGRATING)]
    assert sum(target.startswith("../tests/") for target in targets) >= 20


@pytest.mark.parametrize("link", relative_links(), ids=str)
def test_every_relative_link_leads_to_a_file_that_exists(link: Link) -> None:
    path, _, _ = link.target.partition("#")
    target = (link.document.parent / path).resolve()
    assert target.exists(), f"{link}: {target} does not exist"
    assert target.is_relative_to(ROOT), f"{link}: leads outside the repository"


@pytest.mark.parametrize(
    "link", [link for link in relative_links() if "#L" in link.target], ids=str
)
def test_every_line_anchor_lands_in_the_test_it_names(link: Link) -> None:
    path, _, anchor = link.target.partition("#")
    target = (link.document.parent / path).resolve()
    match = LINE_ANCHOR.match(anchor)
    assert match, f"{link}: the anchor is not #L<n> or #L<n>-L<m>"
    lines = target.read_text(encoding="utf-8").splitlines()
    first = int(match["first"])
    last = int(match["last"] or first)
    assert 1 <= first <= last <= len(lines), f"{link}: {target.name} has {len(lines)} lines"
    function = enclosing_function(lines, first)
    assert function is not None, f"{link}: line {first} lies in no function"
    assert function.startswith("test_"), f"{link}: line {first} lies in {function}, not a test"
    named = set(TEST_NAME.findall(link.text))
    if named:
        assert named == {function}, f"{link}: line {first} lies in {function}"


@pytest.mark.parametrize("link", page_anchors(), ids=str)
def test_every_in_page_anchor_names_a_heading(link: Link) -> None:
    assert link.target[1:] in headings_of(link.document), f"{link}: no such heading"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_nothing_points_outside_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    for needle in OUTSIDE:
        assert needle not in text, f"{document.relative_to(ROOT)} mentions {needle}"


SOURCE = """\
import pytest


def helper():
    return 1


@pytest.mark.parametrize("x", [1])
async def test_outer(
    x,
):
    def inner():
        return 2

    assert inner() == x + 1


X = 3
"""


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (1, None),  # an import
        (4, "helper"),
        (9, "test_outer"),  # the def line itself
        (10, "test_outer"),  # its signature
        (11, "test_outer"),  # the signature's closing line
        (12, "inner"),
        (13, "inner"),
        (15, "test_outer"),  # after the nested function
        (18, None),  # a top-level assignment
    ],
)
def test_enclosing_function(number: int, expected: str | None) -> None:
    assert enclosing_function(SOURCE.splitlines(), number) == expected

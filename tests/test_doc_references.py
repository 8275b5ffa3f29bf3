"""Code that sends its reader to a section of docs/architecture.md names a section that exists:
rationale moved out of docstrings must stay findable."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
_REFERENCE = re.compile(r'docs/architecture\.md,\s*(?:"([^"]+)"|([^).,:"]+))')


def _headings(text):
    return [re.sub(r"^#+\s*", "", line).strip().lower()
            for line in text.splitlines() if re.match(r"^#{1,6} ", line)]


def references(root):
    """(file, section title) for each "docs/architecture.md, <title>" written in t5core/."""
    found = []
    for path in sorted((root / "t5core").rglob("*.py")):
        text = " ".join(path.read_text(encoding="utf-8").split())
        for match in _REFERENCE.finditer(text):
            title = (match.group(1) or match.group(2)).strip().rstrip(".")
            found.append((path.relative_to(root).as_posix(), title))
    return found


def missing_sections(root):
    headings = _headings((root / "docs" / "architecture.md").read_text(encoding="utf-8"))
    return [f"{path}: {title!r}" for path, title in references(root)
            if not any(title.lower() in heading for heading in headings)]


def test_every_section_the_code_points_to_exists():
    assert len(references(ROOT)) >= 20  # the moved rationale is referenced, not dropped
    assert missing_sections(ROOT) == []


def test_the_check_sees_a_missing_section(tmp_path):
    (tmp_path / "t5core").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "architecture.md").write_text("# Top\n## Beam search\n")
    (tmp_path / "t5core" / "a.py").write_text(
        '"""Why: docs/architecture.md, Beam search). And docs/architecture.md,\n'
        '"Packing rules"."""\n')
    assert missing_sections(tmp_path) == ["t5core/a.py: 'Packing rules'"]

"""`harmonizer report FILE -o PAGE`: one self-contained HTML page, opened in Debian's Chromium and
read as people see it; the values of PII columns masked unless --show-pii."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harmonizer_pipeline.cli import main
from harmonizer_tests.browser import CHROMIUM, NO_CHROMIUM, chromium

ARTIFACTS = Path(__file__).parents[1] / "deployment" / "artifacts"
HOSTILE = "<b>note</b>"
ROWS = [
    ("1", "anna.berg@example.org", "+49 30 1234567", "12,50", "2024-01-05", "Berlin", "ok"),
    ("2", "ben.koch@example.org", "+49 40 2345678", "7,25", "2024-01-19", "Hamburg", ""),
    ("3", "carla.wolf@example.org", "+49 89 3456789", "130,00", "2024-02-02", "München", "ok"),
    ("4", "david.roth@example.org", "+49 221 456789", "0,00", "2024-02-16", "Köln", ""),
    ("5", "eva.lang@example.org", "+49 30 5678901", "-3,10", "2024-03-01", "Berlin", "late"),
    ("6", "felix.ernst@example.org", "+49 40 6789012", "45,90", "2024-03-15", "Hamburg", ""),
    ("7", "gina.hahn@example.org", "+49 89 7890123", "18,00", "2024-04-05", "Berlin", "ok"),
    ("8", "hugo.beck@example.org", "+49 30 8901234", "22,40", "2024-04-19", "Köln", ""),
]
CSV = "id;email;phone;amount;visit;city;" + HOSTILE + "\n" + "".join(";".join(row) + "\n" for row in ROWS)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, str]:
    """The report of the file, masked and with --show-pii."""
    folder = tmp_path_factory.mktemp("report")
    data = folder / "visits.csv"
    data.write_text(CSV, encoding="utf-8")
    written = {}
    for name, flags in (("masked", []), ("clear", ["--show-pii"])):
        page = folder / f"{name}.html"
        result = CliRunner().invoke(main, ["report", str(data), "-o", str(page), *flags])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1] == f"wrote {page}"
        written[name] = page.read_text(encoding="utf-8")
    return written


def test_values_of_pii_columns_are_masked_unless_shown(pages):
    for email, phone in ((row[1], row[2]) for row in ROWS):
        assert email not in pages["masked"] and phone not in pages["masked"]
    assert "anna.berg@example.org" in pages["clear"] and "+49 30 1234567" in pages["clear"]


def test_the_page_is_self_contained(pages):
    page = pages["masked"]
    assert "<script" not in page and "<link" not in page and "@import" not in page
    # the only address in the page is SVG's namespace, which is a name, not a request
    assert page.count("http") == page.count('xmlns="http://www.w3.org/2000/svg"') > 0


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_chromium_shows_the_overview_keys_correlations_and_a_card_per_column(pages, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(pages["masked"], encoding="utf-8")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(path.as_uri())
        assert page.title() == "visits.csv · harmonizer report"
        headings = page.locator("h2").all_inner_texts()
        overview = [row.split("\t") for row in page.locator("#overview tr").all_inner_texts()]
        cards = page.locator("article.column")
        card_titles = cards.locator("h3").all_inner_texts()
        charts = [cards.nth(i).locator("svg").count() for i in range(cards.count())]
        heat_maps = page.eval_on_selector_all("#across svg > title", "titles => titles.map(t => t.textContent)")
        flagged = page.locator("article.column p.pii").all_inner_texts()
        findings = page.locator("#findings h3").all_inner_texts()
        bold = page.locator("article.column h3 b").count()
        amount = [row.split("\t") for row in cards.nth(3).locator("tr").all_inner_texts()]
        email_labels = cards.nth(1).locator("svg").first.evaluate("chart => Array.from(chart.querySelectorAll('text')).map(t => t.firstChild.textContent)")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert headings == ["Keys", "Functional dependencies", "Across columns", "Columns", "Findings"]
    assert overview == [
        ["rows", "8"], ["columns", "7"], ["format", "csv"], ["encoding", "utf-8"], ["delimiter", "';'"],
        ["file size", f"{len(CSV.encode()):,} bytes"], ["quality score", "95.8 / 100"],
    ]  # fmt: skip
    assert card_titles == ["id", "email", "phone", "amount", "visit", "city", HOSTILE]
    assert flagged == ["personal data (email): values masked", "personal data (phone): values masked"]
    # numbers: a histogram; dates: rows per period; text: top values and lengths
    assert charts == [1, 2, 2, 1, 1, 2, 2]
    assert heat_maps == ["Pearson correlation", "Spearman correlation", "Cramér's V"]
    assert amount == [
        ["type", "decimal"], ["filled", "8 of 8 (100.0%)"], ["distinct", "8"], ["quality score", "92.5"], ["mean", "29.12"],
        ["std", "43.54"], ["min … max", "-3.1 … 130"], ["p5 · p25 · median · p75 · p95", "-2.015 · 5.438 · 15.25 · 28.27 · 100.6"],
        ["zeros · negatives", "1 · 1"],
    ]  # fmt: skip
    # the top values of the e-mail column, masked, each with its count
    assert email_labels == [text for letter in "abcdefgh" for text in (f"{letter}***@example.org", "1")]
    assert findings == ["amount: outliers (1 row)"]
    assert bold == 0  # the column named <b>note</b> is text, not markup


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "missing.csv", "-o", "x.html"], "Error: Invalid value for 'PATH': File 'missing.csv' does not exist."),
        (["report", "binary.csv", "-o", "x.html"], "binary.csv: binary content that is neither Parquet nor Excel"),
        (["report", "visits.csv"], "Error: Missing option '-o' / '--output'."),
    ],
)
def test_bad_input_is_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "visits.csv").write_text(CSV, encoding="utf-8")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == message
    assert not (tmp_path / "x.html").exists()

"""The report's charts: well-formed SVG, sized to their counts, every label from the data escaped."""

from __future__ import annotations

import defusedxml.ElementTree as ET
import pytest

from harmonizer_pipeline.reports import svg

NS = {"svg": "http://www.w3.org/2000/svg"}


def parsed(text: str):
    return ET.fromstring(text)


def test_columns_are_as_tall_as_their_counts_with_every_count_in_a_tooltip():
    chart = parsed(svg.columns([2, 4, 0, 1], ["0–10", "10–20", "20–30", "30–40"], "age", svg.Size(400, 116)))
    rects = chart.findall("svg:rect", NS)
    # 100 px of plot above a 16 px axis; the tallest column fills it
    assert [(r.get("x"), r.get("y"), r.get("width"), r.get("height")) for r in rects] == [
        ("0.0", "50.0", "99.0", "50.0"),
        ("100.0", "0.0", "99.0", "100.0"),
        ("200.0", "100.0", "99.0", "0.0"),
        ("300.0", "75.0", "99.0", "25.0"),
    ]
    assert [r.find("svg:title", NS).text for r in rects] == ["0–10: 2", "10–20: 4", "20–30: 0", "30–40: 1"]
    assert [t.text for t in chart.findall("svg:text", NS)] == ["0–10", "30–40"]
    assert chart.find("svg:title", NS).text == "age"


def test_bars_put_the_count_after_each_bar_with_thousands_separators():
    chart = parsed(svg.bars([12_500, 5_000], ["Berlin", "München"], "city", width=300))
    assert chart.get("height") == "32"
    assert [r.get("width") for r in chart.findall("svg:rect", NS)] == ["120.0", "48.0"]
    assert [t.text for t in chart.findall("svg:text", NS)] == ["Berlin", "12,500", "München", "5,000"]


def test_labels_from_the_data_are_escaped_never_markup():
    hostile = '<script>alert("x")</script>&'
    for text in (svg.columns([1], [hostile], hostile), svg.bars([1], [hostile], "t"), svg.heat_map([hostile], [[1.0]], "t")):
        assert "<script>" not in text
        assert "&lt;script&gt;" in text
        parsed(text)  # still well-formed


def test_long_labels_are_clipped_on_the_chart_and_whole_in_the_tooltip():
    label = "a very long column name indeed"
    chart = parsed(svg.bars([1], [label], "t"))
    (text, _count) = chart.findall("svg:text", NS)
    assert text.text == "a very long colum…"
    assert text.find("svg:title", NS).text == label


def test_heat_map_colours_run_from_blue_through_white_to_orange():
    chart = parsed(svg.heat_map(["a", "b"], [[1.0, -0.5], [None, 0.0]], "pearson"))
    cells = chart.findall("svg:rect", NS)
    assert [c.get("fill") for c in cells] == ["#d66e20", "#9db6d2", "#eeeeee", "#ffffff"]
    assert [c.find("svg:title", NS).text for c in cells] == ["a × a: 1.00", "a × b: -0.50", "b × a: not computed", "b × b: 0.00"]
    values = [t.text for t in chart.findall("svg:text", NS)[4:]]
    assert values == ["1.00", "-0.50", None, "0.00", "pearson"]  # the cells, then the caption
    assert (chart.get("width"), chart.get("height")) == ("248", "166")  # room right of the cells for the rising names


def test_an_association_heat_map_is_orange_only():
    chart = parsed(svg.heat_map(["a"], [[0.5]], "cramér's v", signed=False))
    assert chart.find("svg:rect", NS).get("fill") == "#eab690"


@pytest.mark.parametrize(
    ("draw", "message"),
    [
        (lambda: svg.columns([1, 2], ["a"], "t"), "2 counts but 1 labels"),
        (lambda: svg.bars([1], ["a", "b"], "t"), "1 counts but 2 labels"),
        (lambda: svg.heat_map(["a", "b"], [[1.0, 0.0]], "t"), "a heat map of 2 names needs 2 rows of 2 values"),
    ],
)
def test_mismatched_inputs_are_refused(draw, message):
    with pytest.raises(ValueError) as caught:
        draw()
    assert str(caught.value) == message


def test_no_counts_draws_an_empty_chart():
    chart = parsed(svg.columns([], [], "empty"))
    assert chart.findall("svg:rect", NS) == [] and chart.get("height") == "120"

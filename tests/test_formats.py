"""Papers brought in standard formats (arXiv API feeds, the arXiv metadata snapshot, BibTeX, RIS, CSV, JSON
lines, OpenAlex works), each through its real parser, on files written here from the shipped corpus's real
abstracts with the quirks those formats have: hard-wrapped text, LaTeX accents and escapes, HTML entities,
old-style arXiv ids, entries without an abstract, broken lines, and one paper in two formats."""

from __future__ import annotations

import csv
import importlib
import json
import textwrap
from pathlib import Path

import pytest

import rag
from rag.config import Settings
from rag.corpus import merge_records, parse_file
from rag.embedding import embedder_name
from rag.errors import IngestError
from rag.filters import Filters
from rag.formats import FORMATS, Options, detect, read_file
from rag.formats.common import arxiv_id, parse_date, split_authors
from rag.formats.openalex import abstract_text
from rag.store import SCHEMA_VERSION, Store, open_store
from rag.types import Paper
from tests.conftest import SEED_FILES, run_rag


def seed_papers() -> list[Paper]:
    """The shipped corpus's papers that have a title and authors, in corpus order."""
    records = [record for path in SEED_FILES for record in parse_file(path).records]
    return [p for p in merge_records(records) if p.title and p.authors]


PAPERS = seed_papers()
# A paper whose abstract holds LaTeX math and a percent sign, as arXiv abstracts do.
MATH = next(p for p in PAPERS if "$O(" in p.abstract and "%" in p.abstract)
OTHERS = [p for p in PAPERS if p is not MATH][:8]


def wrap(text: str, width: int) -> str:
    """Hard-wrapped at spaces, as feeds and exports wrap an abstract."""
    return textwrap.fill(text, width, break_on_hyphens=False, break_long_words=False)


def folded(text: str) -> str:
    return " ".join(text.split())


def last_first(name: str) -> str:
    *first, last = name.split()
    return f"{last}, {' '.join(first)}"


def atom_feed(papers: list[Paper], first_id: int = 1) -> str:
    """An arXiv API response for `papers`, ids 2401.000NN, summaries hard-wrapped, `&` and `<` as entities."""

    def escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;")

    entries = []
    for n, paper in enumerate(papers, first_id):
        authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in paper.authors or [])
        entries.append(
            f"""  <entry>
    <id>http://arxiv.org/abs/2401.{n:05d}v2</id>
    <updated>2024-01-{n + 10:02d}T10:00:00Z</updated>
    <published>2024-01-{n:02d}T18:59:59Z</published>
    <title>{escape(paper.title or "")}</title>
    <summary>{wrap(escape(paper.abstract), 72)}</summary>
    {authors}
    <arxiv:doi>10.5555/test.{n}</arxiv:doi>
    <arxiv:journal_ref>Proc. Test 2024</arxiv:journal_ref>
    <link href="http://arxiv.org/abs/2401.{n:05d}v2" rel="alternate" type="text/html"/>
    <arxiv:primary_category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="stat.ML" scheme="http://arxiv.org/schemas/atom"/>
  </entry>"""
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom">\n  <title>ArXiv Query</title>\n'
        + "\n".join(entries)
        + "\n</feed>\n"
    )


def bibtex(papers: list[Paper]) -> str:
    """A Zotero-style export: "Last, First" authors, braces around the title, `%` escaped, abstracts wrapped."""
    out = []
    for n, paper in enumerate(papers):
        authors = " and ".join(last_first(a) for a in paper.authors or [])
        abstract = wrap(paper.abstract.replace("%", r"\%"), 70)
        out.append(
            f"@inproceedings{{key{n},\n  title = {{{{{paper.title}}}}},\n  author = {{{authors}}},\n"
            f"  abstract = {{{abstract}}},\n  booktitle = {{Proceedings of Tests}},\n  year = {{2023}},\n"
            f"  month = {{mar}},\n  doi = {{10.5555/bib.{n}}},\n}}\n"
        )
    out.append(
        "@misc{noabstract,\n  title = {A Talk},\n  author = {M{\\\"u}ller, J{\\'e}r{\\^o}me},\n  year = {2020},\n}\n"
    )
    return "\n".join(out)


def snapshot_line(paper: Paper, identifier: str, categories: str = "cs.LG stat.ML") -> str:
    """One record of the arXiv metadata snapshot, in its documented schema."""
    return json.dumps(
        {
            "id": identifier,
            "submitter": "Someone",
            "authors": ", ".join(paper.authors or []),
            "title": paper.title,
            "comments": "12 pages",
            "journal-ref": None,
            "doi": None,
            "report-no": None,
            "categories": categories,
            "license": None,
            "abstract": "  " + wrap(paper.abstract, 76).replace("\n", "\n  ") + "\n",
            "versions": [
                {"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"},
                {"version": "v2", "created": "Tue, 24 Jul 2007 20:10:27 GMT"},
            ],
            "update_date": "2008-11-13",
            "authors_parsed": [[a.split()[-1], " ".join(a.split()[:-1]), ""] for a in paper.authors or []],
        }
    )


def test_an_arxiv_api_feed_gives_ids_versions_dates_categories_and_unwrapped_abstracts(tmp_path: Path) -> None:
    path = tmp_path / "query.xml"
    text = atom_feed([MATH, *OTHERS[:2]])
    path.write_text(text, encoding="utf-8")
    parsed = read_file(path)
    assert parsed.layout == "arxiv-atom" and parsed.problems == []
    first = parsed.records[0]
    assert first.abstract == folded(MATH.abstract) and first.title == MATH.title and first.authors == MATH.authors
    assert (first.arxiv_id, first.version, first.doi) == ("2401.00001", 2, "10.5555/test.1")
    assert (first.published, first.updated) == (parse_date("2024-01-01"), parse_date("2024-01-11"))
    assert (first.category, first.categories, first.venue) == ("cs.LG", ["cs.LG", "stat.ML"], "Proc. Test 2024")
    assert [r.source.line for r in parsed.records] == [
        n for n, line in enumerate(text.split("\n"), 1) if "<entry>" in line
    ]


def test_an_arxiv_api_error_response_is_reported_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "error.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n<entry><id>http://arxiv.org/api/errors'
        "</id><title>Error</title><summary>incorrect id format for 1234.12345</summary></entry>\n</feed>\n",
        encoding="utf-8",
    )
    with pytest.raises(IngestError, match=r"error\.xml: no paper .*incorrect id format for 1234\.12345"):
        read_file(path)


def test_the_arxiv_snapshot_is_read_line_by_line_with_old_style_ids_latex_and_bad_lines_reported(
    tmp_path: Path,
) -> None:
    path = tmp_path / "arxiv-metadata-oai-snapshot.json"
    old_style = json.dumps(
        {
            "id": "math/0406002",
            "title": 'On M{\\"o}bius\n  inversion',
            "abstract": '  We prove that $\\alpha$-stable laws hold with 50% probability, see\n  Sch\\"afer.\n',
            "authors": "A. Bee and C. Dee",
            "categories": "math.PR",
            "versions": [{"version": "v1", "created": "Tue, 1 Jun 2004 00:00:00 GMT"}],
            "update_date": "2008-01-01",
        }
    )
    path.write_text(
        "\n".join([snapshot_line(MATH, "2401.00001"), "{not json", old_style, snapshot_line(OTHERS[0], "0704.0001")])
        + "\n",
        encoding="utf-8",
    )
    assert detect(path) == "arxiv-snapshot"
    parsed = read_file(path)
    assert [str(p) for p in parsed.problems] == [
        f"{path.name} line 2: not JSON (Expecting property name enclosed in double quotes); "
        "each line must be one snapshot record"
    ]
    first, old, last = parsed.records
    assert first.abstract == folded(MATH.abstract) and first.authors == MATH.authors
    assert (first.published, first.updated, first.version) == (parse_date("2007-04-02"), parse_date("2008-11-13"), 2)
    assert (old.arxiv_id, old.title, old.authors, old.category) == (
        "math/0406002",
        "On Möbius inversion",
        ["A. Bee", "C. Dee"],
        "math.PR",
    )
    assert old.abstract == "We prove that $\\alpha$-stable laws hold with 50% probability, see Schäfer."
    assert (last.arxiv_id, last.source.line) == ("0704.0001", 4)


def test_the_category_and_limit_options_take_a_part_of_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.jsonl"
    lines = [snapshot_line(p, f"2401.{n:05d}", "cs.CV" if n % 2 else "stat.ML cs.LG") for n, p in enumerate(OTHERS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    wanted = read_file(path, Options(categories=frozenset({"cs.lg"})))
    assert [r.arxiv_id for r in wanted.records] == [f"2401.{n:05d}" for n in range(0, len(OTHERS), 2)]
    assert len(read_file(path, Options(), limit=3).records) == 3


def test_bibtex_entries_get_unicode_names_and_venue_and_one_without_an_abstract_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "library.bib"
    text = bibtex([MATH, OTHERS[0]]) + "@article{broken,\n  title = {Unclosed\n"
    path.write_text(text, encoding="utf-8")
    starts = [n for n, line in enumerate(text.split("\n"), 1) if line.startswith("@")]
    parsed = read_file(path)
    assert parsed.layout == "bibtex"
    math, other = parsed.records
    assert math.abstract == folded(MATH.abstract) and math.title == MATH.title and math.authors == MATH.authors
    assert (math.doi, math.published, math.venue) == ("10.5555/bib.0", parse_date("2023-03"), "Proceedings of Tests")
    assert other.abstract == folded(OTHERS[0].abstract)
    messages = [str(p) for p in parsed.problems]
    assert any(m.startswith(f"library.bib line {starts[3]}: entry does not parse") for m in messages), messages
    assert f"library.bib line {starts[2]}: entry noabstract: no abstract; the entry is not stored" in messages


def test_ris_csv_jsonl_and_openalex_records(tmp_path: Path) -> None:
    ris = tmp_path / "export.ris"
    ris.write_text(
        "".join(
            "TY  - JOUR\n"
            + "".join(f"AU  - {last_first(a)}\n" for a in p.authors or [])
            + f"TI  - {p.title}\nAB  - {p.abstract}\nPY  - 2022\nDA  - 2022/06/30\nDO  - https://doi.org/10.5555/RIS.{n}\n"
            f"UR  - https://arxiv.org/abs/2206.{n:05d}v3\nER  - \n\n"
            for n, p in enumerate(OTHERS[:2])
        )
        + "TY  - JOUR\nTI  - No abstract here\nER  - \n",
        encoding="utf-8",
    )
    table = tmp_path / "papers.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Name", "Summary", "Authors", "Year"])
        writer.writerow(
            [OTHERS[2].title, OTHERS[2].abstract, "; ".join(last_first(a) for a in OTHERS[2].authors or []), 2021]
        )
    lines = tmp_path / "papers.jsonl"
    lines.write_text(
        json.dumps({"title": OTHERS[3].title, "abstract": OTHERS[3].abstract, "authors": OTHERS[3].authors,
                    "date": "2020-02-29", "arxiv_id": "arXiv:2002.00003v1"}) + "\n[1, 2]\n",
        encoding="utf-8",
    )  # fmt: skip
    words = OTHERS[4].abstract.split()
    index: dict[str, list[int]] = {}
    for position, word in enumerate(words):
        index.setdefault(word, []).append(position)
    works = tmp_path / "works.json"
    works.write_text(
        json.dumps({"meta": {"count": 1}, "results": [{
            "id": "https://openalex.org/W4", "doi": "https://doi.org/10.5555/OA.4", "title": OTHERS[4].title,
            "publication_date": "2019-07-01", "abstract_inverted_index": index,
            "authorships": [{"author": {"display_name": a}} for a in OTHERS[4].authors or []],
            "primary_location": {"landing_page_url": "https://example.org/w4", "source": {"display_name": "J. Tests"}},
        }]}),
        encoding="utf-8",
    )  # fmt: skip
    first, _ = read_file(ris).records
    assert (first.abstract, first.authors, first.doi) == (
        folded(OTHERS[0].abstract),
        OTHERS[0].authors,
        "10.5555/ris.0",
    )
    assert (first.arxiv_id, first.version, first.published) == ("2206.00000", 3, parse_date("2022-06-30"))
    assert [str(p) for p in read_file(ris).problems] == [
        f"export.ris line {ris.read_text().split(chr(10)).index('TI  - No abstract here')}: "
        "entry 'No abstract here': no abstract; the entry is not stored"
    ]

    mapped = read_file(table, Options(fields={"title": "Name"}))
    (row,) = mapped.records
    assert (row.title, row.abstract, row.authors, row.published.year if row.published else None) == (
        OTHERS[2].title,
        folded(OTHERS[2].abstract),
        OTHERS[2].authors,
        2021,
    )

    (item,) = read_file(lines).records
    assert (item.arxiv_id, item.version, item.published, item.authors) == (
        "2002.00003",
        1,
        parse_date("2020-02-29"),
        OTHERS[3].authors,
    )
    assert [str(p) for p in read_file(lines).problems] == [
        "papers.jsonl line 2: not a JSON object; each line must be one object"
    ]

    (work,) = read_file(works).records
    assert work.abstract == " ".join(words) and work.doi == "10.5555/oa.4" and work.venue == "J. Tests"
    assert (work.url, work.authors) == ("https://example.org/w4", OTHERS[4].authors)


def test_the_format_is_told_by_content_and_an_unknown_one_is_one_line_listing_the_formats(tmp_path: Path) -> None:
    hidden = tmp_path / "export.txt"
    hidden.write_text(bibtex([OTHERS[0]]), encoding="utf-8")
    assert detect(hidden) == "bibtex" and read_file(hidden).records[0].title == OTHERS[0].title
    with pytest.raises(IngestError) as caught:
        read_file(hidden, Options(format="endnote"))
    assert str(caught.value) == f"export.txt: unknown format 'endnote'; the formats read are {', '.join(FORMATS)}"
    assert detect(SEED_FILES[0]) == "scraped"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://arxiv.org/abs/2312.02896v2", ("2312.02896", 2)),
        ("arXiv:2312.02896", ("2312.02896", None)),
        ("https://arxiv.org/pdf/hep-th/9901001v1", ("hep-th/9901001", 1)),
        ("math.PR/0406002", ("math.PR/0406002", None)),
        ("10.48550/arXiv.2312.02896", ("2312.02896", None)),
        ("no id in 2023.1 here", (None, None)),
    ],
)
def test_arxiv_ids_are_read_without_their_version(text: str, expected: tuple[str | None, int | None]) -> None:
    assert arxiv_id(text) == expected


def test_author_strings_are_split_the_ways_files_write_them() -> None:
    assert split_authors("Ada Lovelace and Alan Turing") == ["Ada Lovelace", "Alan Turing"]
    assert split_authors("Ada Lovelace, Alan Turing, and Grace Hopper") == [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
    ]
    assert split_authors("Lovelace, Ada; Turing, Alan") == ["Ada Lovelace", "Alan Turing"]


def test_an_inverted_index_is_rebuilt_in_word_order() -> None:
    assert (
        abstract_text({"models": [1, 4], "Large": [0], "merge": [2], "other": [3]}) == "Large models merge other models"
    )


def test_one_paper_in_a_feed_and_a_bibtex_export_is_one_paper_with_both_sources_and_the_newest_abstract(
    tmp_path: Path,
) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(atom_feed([OTHERS[0]]), encoding="utf-8")
    older = tmp_path / "older.jsonl"
    edited = OTHERS[0].model_copy(update={"abstract": OTHERS[0].abstract + " An earlier version."})
    older.write_text(snapshot_line(edited, "2401.00001").replace('"v2"', '"v1"', 1).replace(
        ', {"version": "v1", "created": "Tue, 24 Jul 2007 20:10:27 GMT"}', "") + "\n", encoding="utf-8")  # fmt: skip
    library = tmp_path / "library.bib"
    library.write_text(bibtex([OTHERS[0]]).replace("10.5555/bib.0", "10.5555/test.1"), encoding="utf-8")
    records = [r for path in (feed, older, library) for r in read_file(path).records]
    (paper,) = merge_records(records)
    assert paper.files == ["feed.xml", "library.bib", "older.jsonl"]
    assert paper.abstract == folded(OTHERS[0].abstract) and paper.arxiv_id == "2401.00001"
    assert paper.doi == "10.5555/test.1" and paper.url == "http://arxiv.org/abs/2401.00001v2"


@pytest.mark.slow  # ingests the shipped corpus with the command: about a minute
def test_a_folder_of_formats_ingests_beside_the_shipped_corpus_and_is_asked_about(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = tmp_path / "mine"
    folder.mkdir()
    fresh = {
        "title": "Tiny Quokka Networks",
        "abstract": (
            "We introduce Quokka, a 12-layer network that ranks wallaby photographs by their fur density. Quokka "
            "reaches 91.4% accuracy on the Rottnest benchmark while using 3 million parameters."
        ),
        "authors": "Ada Quill",
    }
    (folder / "extra.jsonl").write_text(json.dumps(fresh) + "\n", encoding="utf-8")  # fmt: skip
    (folder / "feed.xml").write_text(atom_feed(OTHERS[:2]), encoding="utf-8")
    library = bibtex(OTHERS[1:3])
    (folder / "library.bib").write_text(library, encoding="utf-8")
    talk = library.split("\n").index("@misc{noabstract,") + 1
    shipped = run_rag("ingest", home=home)
    assert shipped.returncode == 0, shipped.stderr
    added = run_rag("ingest", str(folder), home=home)
    assert added.returncode == 0, added.stderr
    assert f"warning: library.bib line {talk}: entry noabstract: no abstract; the entry is not stored" in added.stderr
    # Three of the imported papers are shipped ones, found again: they keep their ids and gain sources.
    assert "found 4 · new 1 · changed 3 · unchanged 0" in added.stdout, added.stdout
    settings = Settings(home=home, chroma_host=None, chroma_port=None)
    papers = {p.paper_id: p for p in rag.list_papers(settings=settings)}
    assert len(papers) == 337 and {p.paper_id for p in OTHERS[:3]} <= set(papers)
    assert papers[OTHERS[1].paper_id].files[-2:] == ["feed.xml", "library.bib"]
    assert papers[OTHERS[1].paper_id].arxiv_id == "2401.00002"
    answer = rag.ask("What accuracy does the network that ranks wallaby photographs reach?", settings=settings)
    assert not answer.abstained and answer.citations[0].title == "Tiny Quokka Networks"
    # Asked for an accuracy, the answer gives the sentence stating it, not the one whose number is a layer count.
    assert "91.4% accuracy" in answer.text
    listed = run_rag("ask", "What accuracy does the network that ranks wallaby photographs reach?", home=home)
    assert "Tiny Quokka Networks" in listed.stdout and "extra.jsonl#0" in listed.stdout


def test_bad_ingest_options_are_one_line_errors(tmp_path: Path) -> None:
    bad = run_rag("ingest", "--field", "abstract", str(tmp_path), home=tmp_path / "home")
    assert bad.returncode != 0 and "FIELD=COLUMN" in bad.stderr and "Traceback" not in bad.stderr
    unknown = run_rag("ingest", "--field", "summary=abstract", str(tmp_path), home=tmp_path / "home")
    assert unknown.returncode != 0 and "unknown field 'summary'" in unknown.stderr


def test_latex_that_the_renderer_cannot_read_is_kept_as_written_not_a_crash() -> None:
    from rag.formats.common import clean

    text = r"Code is at \href{ https://github.com/x/y}{this https URL} and M{\"u}ller's {BERT}."
    assert "https://github.com/x/y" in clean(text, latex=True)
    assert clean(r"Rates of $O(\log T/\sqrt{T})$ with 50% of M{\"u}ller's data", latex=True) == (
        r"Rates of $O(\log T/\sqrt{T})$ with 50% of Müller's data"
    )


# Malformed files: each reader's failures are a one-line IngestError (the file cannot be used) or a problem naming
# the line (one entry cannot), never a traceback, a paper merged into its neighbour, or one silently dropped.


def read_error(path: Path, options: Options | None = None) -> str:
    """The one-line error reading `path` gives."""
    with pytest.raises(IngestError) as caught:
        read_file(path, options)
    return str(caught.value)


def test_an_atom_file_that_is_not_xml_is_one_error_and_a_feed_cut_short_is_a_warning_where_it_breaks(
    tmp_path: Path,
) -> None:
    page = tmp_path / "query.xml"
    page.write_text(
        '<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n<p>Rate exceeded & retry</b>\n',
        encoding="utf-8",
    )
    assert read_error(page) == (
        "query.xml: no paper with an abstract could be read (arxiv-atom); first problem: query.xml: not a readable "
        "Atom feed (<unknown>:3:18: not well-formed (invalid token)); save the API response as is"
    )
    feed = atom_feed(OTHERS[:2])
    cut = feed[: feed.rindex("<summary>") + 60]  # a download cut off inside the second abstract
    page.write_text(cut, encoding="utf-8")
    parsed = read_file(page)
    assert [r.title for r in parsed.records] == [OTHERS[0].title]
    # feedparser reads on past the break; the warning says where the XML broke, so that a cut abstract is not
    # taken for an entry that had none.
    lines = cut.split("\n")
    second = [n for n, line in enumerate(lines, 1) if line == "  <entry>"][1]
    assert [str(p) for p in parsed.problems] == [
        f"query.xml line {len(lines)}: not well-formed XML (no element found); the entries from here on may be cut "
        "short or missing: save the API response as is",
        f"query.xml line {second}: 2401.00002: no abstract; the entry is not stored",
    ]


def test_a_ris_entry_without_its_end_line_is_reported_not_merged_into_the_next_or_dropped(tmp_path: Path) -> None:
    def entry(paper: Paper, end: bool = True) -> str:
        return f"TY  - JOUR\nTI  - {paper.title}\nAB  - {paper.abstract}\n" + ("ER  - \n" if end else "") + "\n"

    path = tmp_path / "export.ris"
    text = entry(OTHERS[0], end=False) + entry(OTHERS[1]) + entry(OTHERS[2], end=False).rstrip("\n")
    path.write_text(text, encoding="utf-8")
    starts = [n for n, line in enumerate(text.split("\n"), 1) if line.startswith("TY  - ")]
    parsed = read_file(path)
    assert [(r.title, r.abstract, r.source.line) for r in parsed.records] == [
        (OTHERS[1].title, folded(OTHERS[1].abstract), starts[1])
    ]
    unclosed = "entry has no `ER  - ` line before the next entry or the end of the file; add one"
    assert [str(p) for p in parsed.problems] == [
        f"export.ris line {starts[0]}: {unclosed} (the entry is not stored)",
        f"export.ris line {starts[2]}: {unclosed} (the entry is not stored)",
    ]
    path.write_text("Provider: a reference manager\nTitle only, no tags at all\n", encoding="utf-8")
    assert read_error(path) == (
        "export.ris: no paper with an abstract could be read (ris); first problem: export.ris: no `TY  - ` line opens "
        "an entry; export it again as RIS"
    )


def test_a_csv_without_an_abstract_column_says_how_to_name_it_and_reads_once_named(tmp_path: Path) -> None:
    path = tmp_path / "papers.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["Name", "Text"], [OTHERS[0].title, OTHERS[0].abstract]])
    assert read_error(path) == (
        "papers.csv: no paper with an abstract could be read (csv); first problem: papers.csv line 1: no abstract "
        "column among ['Name', 'Text']; name it with --field abstract=NAME"
    )
    (row,) = read_file(path, Options(fields={"abstract": "Text"})).records
    assert row.abstract == folded(OTHERS[0].abstract)


def test_a_ragged_csv_row_is_reported_with_its_line_and_never_stored_under_the_wrong_columns(tmp_path: Path) -> None:
    path = tmp_path / "papers.csv"
    good, unquoted, later = OTHERS[0], OTHERS[1], OTHERS[2]
    assert "," in unquoted.abstract  # so that, unquoted, it spills into the authors column and beyond
    lines = [
        "title,abstract,authors",
        f'"{good.title}","{good.abstract}",Ada Quill',
        f'"{unquoted.title}",{unquoted.abstract},Ada Quill',
        "A title alone",
        "",
        f'"{later.title}","{later.abstract}",Alan Turing',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parsed = read_file(path)
    assert [(r.title, r.abstract, r.authors, r.source.line) for r in parsed.records] == [
        (good.title, folded(good.abstract), ["Ada Quill"], 2),
        (later.title, folded(later.abstract), ["Alan Turing"], 6),
    ]
    fields = len(lines[2].split(","))
    fix = "quote the fields that hold commas or line breaks (the row is not stored)"
    assert [str(p) for p in parsed.problems] == [
        f"papers.csv line 3: {fields} fields where the header has 3; {fix}",
        f"papers.csv line 4: 1 field where the header has 3; {fix}",
    ]
    # A quote never closed would swallow the rows after it into one abstract: the file is refused at its row.
    path.write_text("\n".join([*lines[:2], f'"{unquoted.title}","{unquoted.abstract}', *lines[5:]]) + "\n")
    assert read_error(path) == (
        "papers.csv line 3: not readable as CSV (',' expected after '\"'); close the quote this row opens, or quote "
        "its fields that hold commas or quotes"
    )


def test_openalex_that_is_not_json_or_holds_no_works_is_reported_never_a_crash(tmp_path: Path) -> None:
    words = OTHERS[0].abstract.split()
    index: dict[str, list[int]] = {}
    for position, word in enumerate(words):
        index.setdefault(word, []).append(position)
    work = {"id": "https://openalex.org/W1", "title": OTHERS[0].title, "abstract_inverted_index": index}
    path = tmp_path / "works.json"
    text = json.dumps({"results": [work]})
    path.write_text(text[: text.index('"title": "') + 14], encoding="utf-8")  # a download cut off in the title
    assert detect(path) == "openalex"
    assert read_error(path) == (
        "works.json: no paper with an abstract could be read (openalex); first problem: works.json line 1: not JSON "
        "(Unterminated string starting at); save the API response as is"
    )
    # In a JSON file a work's "line" is its place in the results, as for the records (rag.formats.openalex).
    broken = {**work, "id": "https://openalex.org/W3", "ids": "W3", "authorships": ["Ada"]}
    path.write_text(json.dumps({"results": [work, 5, broken]}), encoding="utf-8")
    parsed = read_file(path)
    assert [r.abstract for r in parsed.records] == [" ".join(words)]
    assert [str(p) for p in parsed.problems] == [
        "works.json line 2: work 2: not a JSON object, so not an OpenAlex work; the entry is not stored",
        "works.json line 3: https://openalex.org/W3: not an OpenAlex work, a field is not of the type OpenAlex gives "
        "it ('str' object has no attribute 'get'); the entry is not stored",
    ]
    for data in ({"results": None}, "a string"):
        path.write_text(json.dumps(data), encoding="utf-8")
        assert read_error(path, Options(format="openalex")) == (
            "works.json: no paper with an abstract could be read (openalex); first problem: works.json: not OpenAlex "
            'works: expected {"results": [...]}, one work or a list of works; save the API response as is'
        )


@pytest.mark.parametrize("name", ["library.bib", "papers.csv", "papers.jsonl", "export.ris"])
def test_a_structured_file_that_is_not_utf8_is_one_error_naming_its_line(tmp_path: Path, name: str) -> None:
    paper = OTHERS[1]  # all ASCII, so that only the line with "é" differs between UTF-8 and Latin-1
    text = {
        "library.bib": bibtex([paper]) + "@misc{cafe,\n  title = {Caf\u00e9 talk},\n}\n",
        "papers.csv": f'title,abstract\n"{paper.title}","{paper.abstract}"\nCaf\u00e9 talk,"{paper.abstract}"\n',
        "papers.jsonl": json.dumps({"title": paper.title, "abstract": paper.abstract}) + "\n"
        + json.dumps({"title": "Caf\u00e9 talk", "abstract": paper.abstract}, ensure_ascii=False) + "\n",
        "export.ris": f"TY  - JOUR\nTI  - {paper.title}\nAB  - {paper.abstract}\nER  - \n\nTY  - JOUR\n"
        "TI  - Caf\u00e9 talk\nER  - \n",
    }[name]  # fmt: skip
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))  # as an older exporter, or a Windows editor, saves it
    line = next(n for n, row in enumerate(text.split("\n"), 1) if "\u00e9" in row)
    assert read_error(path) == f"{name} line {line}: not UTF-8 (byte 0xe9); convert it, e.g. iconv -t UTF-8"


@pytest.mark.slow
def test_rag_ingest_reports_each_malformed_file_in_one_line_stores_the_rest_and_loses_no_stored_paper(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    folder = tmp_path / "mine"
    folder.mkdir()
    library = folder / "library.bib"
    library.write_text(bibtex([OTHERS[0]]), encoding="utf-8")
    lines = folder / "papers.jsonl"
    rows = [json.dumps({"title": p.title, "abstract": p.abstract, "authors": p.authors}) for p in OTHERS[1:3]]
    lines.write_text(f'{rows[0]}\n{{"title": "Cut short", "abstract": "We stud\n{rows[1]}\n', encoding="utf-8")
    first = run_rag("ingest", str(folder), home=home)
    assert first.returncode == 0, first.stderr
    assert "warning: papers.jsonl line 2: not JSON (Invalid control character at); each line must be one object" in (
        first.stderr
    )
    assert "found 3 · new 3" in first.stdout
    # The library is saved again as Latin-1, and broken exports join it: each is one line, the rest is stored, and
    # --prune keeps every paper of a file that could not be read.
    library.write_bytes(library.read_bytes() + "@misc{cafe,\n  title = {Caf\u00e9 talk},\n}\n".encode("latin-1"))
    (folder / "query.xml").write_text(
        '<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n<p>Rate exceeded & retry</b>\n'
    )
    (folder / "works.json").write_text('{"results": [{"id": "https://openalex.org/W1", "abstract_inverted_index": {')
    (folder / "nocolumn.csv").write_text(f'Name,Text\nA title,"{OTHERS[3].abstract}"\n')
    (folder / "ragged.csv").write_text(
        f'title,abstract\n"{OTHERS[4].title}","{OTHERS[4].abstract}"\nA title,{OTHERS[1].abstract},spilled\n'
    )
    unreadable = ["library.bib", "query.xml", "works.json", "nocolumn.csv"]
    expected = {f"error: {read_error(folder / name)}" for name in unreadable}
    again = run_rag("ingest", "--prune", str(folder), home=home)
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
    assert {line for line in again.stderr.splitlines() if line.startswith("error: ")} == expected
    assert any(
        line.startswith("warning: ragged.csv line 3: ") and "fields where the header has 2; quote" in line
        for line in again.stderr.splitlines()
    ), again.stderr
    assert "ingested 2 of 6 files" in again.stdout
    assert "found 3 · new 1 · changed 0 · unchanged 2 · removed 0 · 4 in store" in again.stdout, again.stdout
    listed = [json.loads(row) for row in run_rag("papers", "--jsonl", home=home).stdout.splitlines()]
    files = {paper["title"]: [source["file"] for source in paper["sources"]] for paper in listed}
    assert files == {
        OTHERS[0].title: ["library.bib"],
        OTHERS[1].title: ["papers.jsonl"],
        OTHERS[2].title: ["papers.jsonl"],
        OTHERS[4].title: ["ragged.csv"],
    }


FOLDER = Path(__file__).parent / "data" / "formats"  # written by someone who had not read rag/formats


@pytest.mark.slow
def test_a_folder_of_exports_written_independently_ingests_as_its_author_expected(tmp_path: Path) -> None:
    """Six files (an arXiv API result, snapshot lines, a Zotero BibTeX export, RIS, CSV, OpenAlex works) written
    from the shipped abstracts by hand, with EXPECTED.json listing the papers its author meant after merging."""
    expected = json.loads((FOLDER / "EXPECTED.json").read_text(encoding="utf-8"))
    settings = Settings(home=tmp_path / "home", chroma_host=None, chroma_port=None)
    files = sorted(p for p in FOLDER.iterdir() if p.name != "EXPECTED.json")
    report = rag.ingest(files, settings=settings)
    assert not report.failed_files and report.papers_total == len(expected["papers"])
    assert sorted(p.file for p in report.problems) == sorted(e["file"] for e in expected["not_stored"])
    stored = {" ".join((p.title or "").casefold().split()): p for p in rag.list_papers(settings=settings)}
    for paper in expected["papers"]:
        got = stored[" ".join(paper["title"].casefold().split())]
        assert (got.authors, got.year, got.arxiv_id, got.doi) == (
            paper["authors"], paper["year"], paper["arxiv_id"], paper["doi"]
        ), paper["title"]  # fmt: skip
        assert sorted(got.files) == sorted(paper["files"]) and folded(got.abstract).startswith(paper["abstract_start"])


@pytest.mark.slow
def test_a_run_read_in_windows_of_two_records_stores_what_one_window_stores_and_reads_only_the_papers_it_may_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ingest holds one window of records at a time (rag.ingest.WINDOW): the same papers come out when the
    folder's duplicates across formats fall into different windows, and a later run into the store looks up the
    stored papers its records may be instead of reading the whole store."""
    files = sorted(p for p in FOLDER.iterdir() if p.name != "EXPECTED.json")

    def run(home: str) -> tuple[rag.IngestReport, dict[str, tuple[object, ...]]]:
        settings = Settings(home=tmp_path / home, chroma_host=None, chroma_port=None)
        report = rag.ingest(files, settings=settings)
        papers = rag.list_papers(settings=settings)
        return report, {
            p.paper_id: (sorted(p.files), p.title, p.abstract, p.authors, p.arxiv_id, p.doi) for p in papers
        }

    one, whole = run("one")
    monkeypatch.setattr(importlib.import_module("rag.ingest"), "WINDOW", 2)
    many, windowed = run("many")
    assert windowed == whole and len(whole) == 12
    assert (many.found, many.new, many.changed, many.papers_total) == (one.found, one.new, 0, 12)
    assert many.chunks_total == one.chunks_total

    def whole_store(self: Store, paper_ids: object = None) -> object:
        if paper_ids is None:
            raise AssertionError("read the whole store")
        return original(self, paper_ids)

    original = Store.stored_pages
    monkeypatch.setattr(Store, "stored_pages", whole_store)
    monkeypatch.setattr(Store, "chunk_counts", whole_store)
    more = tmp_path / "more.jsonl"
    titles = {folded(title or "") for _, title, *_ in windowed.values()}
    known = next(p for p in PAPERS if folded(p.title or "") in titles)  # stored from another file: found, not new
    fresh = next(p for p in OTHERS if folded(p.title or "") not in titles)
    more.write_text(snapshot_line(fresh, "2402.00005") + "\n" + snapshot_line(known, "2402.00006") + "\n")
    added = rag.ingest([more], settings=Settings(home=tmp_path / "many", chroma_host=None, chroma_port=None))
    assert (added.found, added.new, added.papers_total) == (2, 1, 13)


@pytest.mark.slow
def test_papers_sharing_a_title_in_different_windows_stay_apart_and_an_edit_replaces_across_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setattr(importlib.import_module("rag.ingest"), "WINDOW", 2)
    namesake = OTHERS[0].model_copy(update={"abstract": OTHERS[0].abstract + " A second study."})
    papers = [namesake, OTHERS[1], OTHERS[2], OTHERS[0]]  # the namesake's place is looked up before OTHERS[0] is read
    listing = tmp_path / "listing.jsonl"

    def write(rows: list[Paper]) -> None:  # no arXiv id or DOI: each paper is known by its title and abstract
        lines = [json.dumps({"title": p.title, "abstract": p.abstract, "authors": p.authors}) for p in rows]
        listing.write_text("\n".join(lines) + "\n", encoding="utf-8")

    write(papers)
    first = rag.ingest([listing], settings=settings)
    again = rag.ingest([listing], settings=settings)
    assert (first.new, first.papers_total) == (4, 4)
    assert (again.unchanged, again.changed, again.chunks_embedded, again.papers_total) == (4, 0, 0, 4)
    edited = OTHERS[1].model_copy(update={"abstract": "An edited abstract. " + OTHERS[1].abstract})
    write([namesake, edited, OTHERS[2], OTHERS[0]])
    monkeypatch.setattr(importlib.import_module("rag.ingest"), "WINDOW", 1)
    third = rag.ingest([listing], settings=settings)
    assert (third.new, third.changed, third.removed, third.papers_total) == (0, 1, 0, 4)
    abstracts = {p.abstract for p in rag.list_papers(settings=settings)}
    assert edited.abstract in abstracts and OTHERS[1].abstract not in abstracts


@pytest.mark.slow
def test_a_category_filter_finds_cross_listed_papers_and_an_older_store_is_upgraded_at_the_next_ingest(
    tmp_path: Path, settings: Settings
) -> None:
    listed = tmp_path / "listed.jsonl"
    listed.write_text(
        snapshot_line(OTHERS[0], "2401.00001", "cs.LG stat.ML") + "\n" + snapshot_line(OTHERS[1], "2401.00002", "cs.CV")
        + "\n", encoding="utf-8")  # fmt: skip
    rag.ingest([listed], settings=settings)
    question = OTHERS[0].title or ""

    def cited(category: str) -> set[str | None]:
        answer = rag.ask(question, filters=Filters(category=category), settings=settings)
        return {c.title for c in answer.citations}

    assert cited("stat.ml") == {OTHERS[0].title}  # a cross-list, in any case
    assert cited("ML") == {OTHERS[0].title}  # the code without its archive, as the shipped listings write it
    assert cited("cs.LG") == {OTHERS[0].title}
    assert OTHERS[0].title not in cited("cs.CV")
    assert rag.Pipeline(settings).categories() == ["cs.CV", "cs.LG", "stat.ML"]

    # A store written before chunks carried their categories filters by the primary category only, until the
    # next ingest rewrites its chunks' fields (without embedding anything again).
    store = open_store(settings, embedder_name(settings))
    chunks = store._chunks.get(include=["metadatas"])
    store._chunks.update(
        ids=chunks["ids"], metadatas=[{**m, "categories": None} for m in chunks["metadatas"]]
    )  # fmt: skip
    store._papers.modify(metadata={**(store._papers.metadata or {}), "schema": 1})
    assert open_store(settings, embedder_name(settings)).schema == 1
    assert cited("cs.LG") == {OTHERS[0].title}
    again = rag.ingest([listed], settings=settings)
    assert (again.unchanged, again.chunks_embedded) == (2, 0)
    upgraded = open_store(settings, embedder_name(settings))
    assert upgraded.schema == SCHEMA_VERSION
    found = upgraded._chunks.get(where={"categories": {"$contains": "stat.ml"}}, include=["metadatas"])["metadatas"]
    cross_listed = {p.paper_id for p in rag.list_papers(settings=settings) if p.title == OTHERS[0].title}
    assert found and {m["paper_id"] for m in found} == cross_listed
    assert cited("stat.ML") == {OTHERS[0].title}

"""The parsers, on the real seed files and on small files made for each quirk of the three layouts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.corpus import BOILERPLATE, MONTHS, collect_files, merge_records, parse_file, parse_text, split_title_authors
from rag.errors import IngestError
from rag.types import paper_id_for
from tests.conftest import SEED, SEED_FILES

ABSTRACT = (
    "We study how {topic} behaves when models are fine-tuned on small data. Our method improves accuracy by "
    "3.2% on five benchmarks while using half the compute. Code and models are released for further research "
    "on this problem, together with an analysis of failure cases. We also find that the gains hold across three "
    "model sizes and two languages."
)


def abstract(topic: str) -> str:
    return ABSTRACT.format(topic=topic)


def papers_by_title(files: list[Path]) -> dict[str, object]:
    records = [record for path in files for record in parse_file(path).records]
    return {paper.title: paper for paper in merge_records(records) if paper.title}


# --- the real seed files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "layout", "count"),
    [("000", "lines", 11), ("001", "daily", 153), ("002", "arxiv", 50), ("003", "daily", 64), ("004", "daily", 73)],
)
def test_each_seed_file_is_read_in_its_layout_without_problems(key: str, layout: str, count: int) -> None:
    parsed = parse_file(SEED[key])
    assert parsed.layout == layout
    assert len(parsed.records) == count
    assert parsed.problems == []
    assert [r.source.position for r in parsed.records] == list(range(count))


def test_every_abstract_line_of_every_seed_file_is_in_exactly_one_paper_unaltered() -> None:
    records = [record for path in SEED_FILES for record in parse_file(path).records]
    papers = merge_records(records)
    abstracts = [paper.abstract for paper in papers]
    assert len(abstracts) == len(set(abstracts)) == 336
    for path in SEED_FILES:
        # In every layout an abstract is a line longer than any title or metadata line.
        for line in path.read_text(encoding="utf-8").split("\n"):
            if len(line) > 300:
                assert abstracts.count(line.strip()) == 1


def test_page_boilerplate_and_page_dates_never_become_papers() -> None:
    for key in ("001", "003", "004"):
        for record in parse_file(SEED[key]).records:
            assert record.title not in BOILERPLATE
            assert len(record.abstract) > 300
    first = parse_file(SEED["001"]).records[0]
    assert first.title == "Can Pre-trained Networks Detect Familiar Out-of-Distribution Data?"
    assert first.date is None  # "Mar 11" at the top is the page's date, not the paper's


def test_a_paper_in_several_files_is_one_paper_with_all_its_sources() -> None:
    papers = papers_by_title(SEED_FILES)
    robustify = papers["Efficiently Robustify Pre-trained Models"]
    assert [(s.file[:3], s.position) for s in robustify.sources] == [("001", 36), ("003", 39), ("004", 55)]
    assert robustify.n_authors == 4 and robustify.published == date(2023, 9, 14)
    lvm = papers[
        "LVM-Med: Learning Large-Scale Self-Supervised Vision Models for Medical Imaging "
        "via Second-order Graph Matching"
    ]
    assert lvm.files == [SEED["001"].name, SEED["003"].name]
    assert lvm.n_authors == 12  # only 003 gives the metadata; the merge keeps it


def test_arxiv_listing_fields_title_glued_to_authors_code_flag_and_organisation() -> None:
    papers = papers_by_title([SEED["002"]])
    radiance = papers["Compressing Volumetric Radiance Fields to 1 MB"]
    assert radiance.authors == ["Lingzhi Li", "Zhen Shen", "Zhongshu Wang"]
    assert radiance.et_al is True and radiance.n_authors is None
    assert (radiance.category, radiance.date, radiance.published, radiance.has_code) == (
        "CV",
        "Nov 29, 2022",
        date(2022, 11, 29),
        True,
    )
    adatask = papers["AdaTask: A Task-aware Adaptive Learning Rate Approach to Multi-task Learning"]
    assert adatask.organization == "tencent-ai" and adatask.has_code is False
    assert adatask.authors == ["Enneng Yang", "Junwei Pan", "Ximei Wang"]
    assert papers["Revisiting Discrete Soft Actor-Critic"].authors[0] == "Haibin Zhou"
    glue = papers["Depth-Aware Generative Adversarial Network for Talking Head Video Generation"]
    assert glue.authors[0] == "Fa-Ting Hong"


def test_daily_page_dates_vote_counts_author_counts_and_missing_metadata() -> None:
    papers = papers_by_title([SEED["003"]])
    origin = papers["Generalizable Origin Identification for Text-Guided Image-to-Image Diffusion Models"]
    assert (origin.date, origin.published, origin.upvotes, origin.n_authors) == ("Jan 4", None, 2, 6)
    beat = papers["Diffusion Models Beat GANs on Image Classification"]
    assert (beat.date, beat.published, beat.upvotes) == ("Jul 17, 2023", date(2023, 7, 17), 1)
    single = papers[
        "Contrastive Mutual Information Learning: Toward Robust Representations without Positive-Pair Augmentations"
    ]
    assert (single.n_authors, single.date, single.upvotes) == (1, "Sep 25", None)
    bare = papers["GuideFlow3D: Optimization-Guided Rectified Flow For Appearance Transfer"]
    assert (bare.n_authors, bare.date, bare.authors) == (None, None, None)


def test_paper_id_depends_on_the_abstract_only() -> None:
    text = abstract("dropout")
    assert paper_id_for(text) == paper_id_for("  " + text.replace(". ", ".\n") + "\n")
    a = parse_text(text + "\n", file="a.txt").records[0]
    b = parse_text(f"Some Title\n\n{text}\n", file="b.txt").records[0]
    assert a.paper_id == b.paper_id
    assert paper_id_for(text) != paper_id_for(text.replace("3.2%", "3.3%"))


# --- quirks, one small file each -------------------------------------------------------------------------------


def daily_page(*blocks: str, header: bool = True) -> str:
    top = (
        "new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nbyAK and the research community\n\nMar 11\n\n"
    )
    return (top if header else "") + "\n\n".join(blocks)


def test_daily_page_without_trailing_newline_and_with_crlf_line_ends() -> None:
    text = daily_page("First Title", abstract("a"), "  • 3 authors\n·\nMay 23 3", "Second Title", abstract("b"))
    for variant in (text, text + "\n", text.replace("\n", "\r\n")):
        records = parse_text(variant, file="d.txt").records
        assert [r.title for r in records] == ["First Title", "Second Title"]
        assert records[0].upvotes == 3 and records[0].n_authors == 3 and records[1].date is None
        assert records[1].abstract == abstract("b")


@pytest.mark.parametrize(
    ("line", "written", "published", "votes"),
    [
        ("Mar 18, 2024", "Mar 18, 2024", date(2024, 3, 18), None),
        ("Jul 17, 2023 1", "Jul 17, 2023", date(2023, 7, 17), 1),
        ("Jan 4 2", "Jan 4", None, 2),
        ("Sep 25", "Sep 25", None, None),
        ("Oct 5, 2023 14", "Oct 5, 2023", date(2023, 10, 5), 14),
    ],
)
def test_every_date_form(line: str, written: str, published: date | None, votes: int | None) -> None:
    record = parse_text(daily_page("T", abstract("x"), f"  • 2 authors\n·\n{line}"), file="d.txt").records[0]
    assert (record.date, record.published, record.upvotes) == (written, published, votes)


def test_an_impossible_date_is_kept_as_written_and_reported_with_its_line() -> None:
    parsed = parse_text(daily_page("T", abstract("x"), "  • 2 authors\n·\nFeb 30, 2024"), file="d.txt")
    assert parsed.records[0].date == "Feb 30, 2024" and parsed.records[0].published is None
    assert [str(p) for p in parsed.problems] == ["d.txt line 17: no such date: 'Feb 30, 2024'; kept as written"]


def test_daily_page_without_header_and_without_blank_line_before_metadata() -> None:
    text = daily_page("Only Title", abstract("y") + "\n  • 1 author\n·\nDec 8, 2021", header=False)
    (record,) = parse_text(text, file="d.txt").records
    assert (record.title, record.n_authors, record.published) == ("Only Title", 1, date(2021, 12, 8))


def test_a_title_with_no_abstract_is_reported_with_its_line_and_not_merged_into_the_next_paper() -> None:
    text = daily_page("Lonely Title", "Real Title", abstract("z"))
    parsed = parse_text(text, file="d.txt")
    assert [r.title for r in parsed.records] == ["Real Title"]
    assert [str(p) for p in parsed.problems] == ["d.txt line 11: title with no abstract after it: 'Lonely Title'"]


def test_an_abstract_with_no_title_is_kept_untitled_and_reported() -> None:
    parsed = parse_text(daily_page("T1", abstract("a"), abstract("b")), file="d.txt")
    assert [(r.title, r.abstract) for r in parsed.records] == [("T1", abstract("a")), (None, abstract("b"))]
    assert [p.line for p in parsed.problems] == [15]


def test_a_metadata_block_with_no_paper_is_reported() -> None:
    parsed = parse_text(daily_page("  • 2 authors\n·\nMar 1, 2024", "T", abstract("a")), file="d.txt")
    assert len(parsed.records) == 1
    assert parsed.problems[0].line == 11 and "metadata block with no paper" in parsed.problems[0].message


@pytest.mark.parametrize(
    ("line", "title", "authors", "et_al", "org"),
    [
        (
            "Compressing Fields to 1 MBLingzhi Li, Zhen Shen et al.",
            "Compressing Fields to 1 MB",
            ["Lingzhi Li", "Zhen Shen"],
            True,
            None,
        ),
        ("Are Models Robust?Haoyu Wang, Guozheng Ma", "Are Models Robust?", ["Haoyu Wang", "Guozheng Ma"], False, None),
        (
            "AdaMerging: Model Merging for Multi-Task LearningEnneng Yang",
            "AdaMerging: Model Merging for Multi-Task Learning",
            ["Enneng Yang"],
            False,
            None,
        ),
        (
            "A Case Study on SuperGLUEQihuang Zhong, Liang Ding et al.",
            "A Case Study on SuperGLUE",
            ["Qihuang Zhong", "Liang Ding"],
            True,
            None,
        ),
        (
            "Talking Head GenerationFa-Ting Hong, Run-Ze Fan et al. · tencent-ai",
            "Talking Head Generation",
            ["Fa-Ting Hong", "Run-Ze Fan"],
            True,
            "tencent-ai",
        ),
        (
            "Bayesian Deep LearningJan van der Berg, Ana de la Cruz",
            "Bayesian Deep Learning",
            ["Jan van der Berg", "Ana de la Cruz"],
            False,
            None,
        ),
        (
            "Zur Lage der Nation 2Jürgen Müller, Zoë Ørsted",
            "Zur Lage der Nation 2",
            ["Jürgen Müller", "Zoë Ørsted"],
            False,
            None,
        ),
    ],
)
def test_title_glued_to_authors_is_split(
    line: str, title: str, authors: list[str], et_al: bool, org: str | None
) -> None:
    assert split_title_authors(line) == (title, authors, et_al, org)


def test_an_arxiv_title_that_cannot_be_told_from_its_authors_is_kept_whole_and_reported() -> None:
    text = f"LGOct 11, 2022Code\nsome lowercase title with no authors\n{abstract('q')}"
    parsed = parse_text(text, file="x.txt")
    assert parsed.records[0].title == "some lowercase title with no authors"
    assert parsed.records[0].authors is None
    assert parsed.problems[0].line == 2 and "cannot tell the title from the authors" in parsed.problems[0].message


def test_an_arxiv_block_missing_its_header_line_is_reported_and_kept_without_it() -> None:
    text = (
        f"LGOct 11, 2022Code\nFirst PaperAnn Lee, Bo Chen\n{abstract('a')}\n"
        f"Second PaperCy Wu, Di Xu\n{abstract('b')}\n"
        f"CVNov 7, 2022\nThird PaperEd Yu, Fa Zu\n{abstract('c')}"
    )
    parsed = parse_text(text, file="002_x.txt")
    assert [r.title for r in parsed.records] == ["First Paper", "Second Paper", "Third Paper"]
    assert parsed.records[1].category is None and parsed.records[2].category == "CV"
    assert parsed.records[2].has_code is False and parsed.records[0].has_code is True
    assert [str(p) for p in parsed.problems] == [
        "002_x.txt line 4: expected a category+date line, got 'Second PaperCy Wu, Di Xu'; paper kept without them"
    ]


def test_one_abstract_per_line_reports_lines_too_short_to_be_abstracts() -> None:
    parsed = parse_text(f"{abstract('a')}\nshort junk line\n{abstract('b')}", file="l.txt")
    assert parsed.layout == "lines" and len(parsed.records) == 2
    assert [r.source.position for r in parsed.records] == [0, 1]
    assert parsed.problems[0].line == 2


# --- bad files -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty.txt: empty file"),
        (b"  \n\n\t\n", "empty.txt: empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "empty.txt: binary file"),
        (b"good line\nbad \xff byte\n", "empty.txt line 2: not UTF-8 (byte 0xff)"),
        (b"id,title,year\n1,Foo,2020\n2,Bar,2021\n", "empty.txt: no known layout"),
        (
            b"# Notes\n\n"
            + b"A paragraph wrapped over lines, as prose in a README is, with enough words.\n" * 6
            + b"\n## Usage\n\nRun it.\n",
            "empty.txt: no known layout",
        ),
        (
            b"x" * (10 * 1024 * 1024),
            "empty.txt: no paper could be read (lines layout); first problem: empty.txt line 1: "
            "10,485,760 characters on one line",
        ),
    ],
)
def test_a_bad_file_gets_one_line_naming_it(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(IngestError) as caught:
        parse_file(path)
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message


def test_a_missing_path_is_a_problem_naming_it_and_the_other_paths_are_still_collected(tmp_path: Path) -> None:
    files, problems = collect_files([tmp_path / "nope.txt", SEED["000"]])
    assert files == [SEED["000"]]
    assert [str(p) for p in problems] == [f"{tmp_path / 'nope.txt'}: no such file or folder; check the path"]


# --- properties ------------------------------------------------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=3000))
def test_arbitrary_text_raises_nothing_but_a_one_line_ingest_error(text: str) -> None:
    try:
        parse_text(text, file="fuzz.txt")
    except IngestError as exc:  # what nearly all random text gets; pages that parse are the property below
        assert "\n" not in str(exc)


# Pages in the layouts of the shipped corpus, made of generated fields: (layout, the page, the records it holds).
page_text = st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"])
abstracts = st.text(page_text, min_size=400, max_size=1500).map(str.strip).filter(lambda t: len(t) > 300)
titles = st.text(page_text, min_size=1, max_size=200).map(str.strip).filter(lambda t: t and t not in BOILERPLATE)
dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31))
person = st.lists(st.from_regex(r"[A-Z][a-z]{1,9}", fullmatch=True), min_size=2, max_size=3).map(" ".join)


def written(day: date, year: bool = True) -> str:
    return f"{list(MONTHS)[day.month - 1]} {day.day}" + (f", {day.year}" if year else "")


@st.composite
def lines_pages(draw: st.DrawFn) -> tuple[str, str, list[dict[str, object]]]:
    """000's layout: one abstract per line."""
    texts = draw(st.lists(abstracts, min_size=1, max_size=5))
    return "lines", "\n".join(texts) + draw(st.sampled_from(["", "\n"])), [{"abstract": t} for t in texts]


@st.composite
def daily_pages(draw: st.DrawFn) -> tuple[str, str, list[dict[str, object]]]:
    """001/003/004's layout: the page's header, then title, abstract and, for some, a block of author count and date
    (with or without a year, with or without a vote count)."""
    from rag.corpus import _AUTHORS_LINE, _DATE_LINE

    blocks, records = [], []
    for _ in range(draw(st.integers(1, 5))):
        title = draw(titles.filter(lambda t: not (_DATE_LINE.fullmatch(t) or _AUTHORS_LINE.fullmatch(t) or t == "·")))
        record: dict[str, object] = {"title": title, "abstract": draw(abstracts)}
        blocks += [title, str(record["abstract"])]
        if draw(st.booleans()):
            authors, day, year = draw(st.integers(1, 300)), draw(dates), draw(st.booleans())
            votes = draw(st.none() | st.integers(0, 999))
            line = written(day, year) + ("" if votes is None else f" {votes}")
            blocks.append(f"  • {authors} author{'s' if authors > 1 else ''}\n·\n{line}")
            record.update(n_authors=authors, date=written(day, year), published=day if year else None, upvotes=votes)
        records.append(record)
    return "daily", daily_page(*blocks), records


@st.composite
def arxiv_pages(draw: st.DrawFn) -> tuple[str, str, list[dict[str, object]]]:
    """002's layout: category, date and "Code" glued on one line, the title glued to its authors (some with "et al."
    or an organisation after them), the abstract."""
    lines, records = [], []
    for _ in range(draw(st.integers(1, 5))):
        category = draw(st.from_regex(r"[A-Za-z][A-Za-z.\-]{0,15}", fullmatch=True))
        day, code = draw(dates), draw(st.booleans())
        # A title ending in "-" would join the first author's name ("Pre-" + "Ann Lee" reads as "Pre-Ann Lee").
        title = draw(titles.filter(lambda t: not t.endswith("-")))
        authors = draw(st.lists(person, min_size=1, max_size=4))
        et_al = draw(st.booleans())
        organization = draw(st.none() | st.from_regex(r"[a-z0-9][a-z0-9-]{0,19}", fullmatch=True))
        after = (" et al." if et_al else "") + (f" · {organization}" if organization else "")
        glued = title + ", ".join(authors) + after
        text = draw(abstracts)
        lines += [f"{category}{written(day)}{'Code' if code else ''}", glued, text]
        records.append(
            {"category": category, "date": written(day), "published": day, "has_code": code, "title": title,
             "authors": authors, "et_al": et_al, "n_authors": None if et_al else len(authors),
             "organization": organization, "abstract": text}
        )  # fmt: skip
    return "arxiv", "\n".join(lines), records


@settings(max_examples=300, deadline=None)
@given(st.one_of(lines_pages(), daily_pages(), arxiv_pages()))
def test_pages_in_every_shipped_layout_parse_back_to_the_records_they_were_made_of(
    page: tuple[str, str, list[dict[str, object]]],
) -> None:
    layout, text, expected = page
    parsed = parse_text(text, file="p.txt")  # raises nothing: every example is a page that parses
    assert (parsed.layout, parsed.problems) == (layout, [])
    assert len(parsed.records) == len(expected)
    for record, fields in zip(parsed.records, expected, strict=True):
        assert {name: getattr(record, name) for name in fields} == fields
        assert record.abstract in text  # as it stands in the page, never altered

"""Which paper a record belongs to, whatever file it came from: records that share an arXiv id (any version), a
DOI, or (found in two different files) a title with the same opening words of the abstract are one paper. Within
one file a paper is followed by its place (rag.ingest), so an edited abstract there replaces the old paper as it
always has. A paper's id comes from its arXiv id, else its DOI, else its abstract (how the shipped listings'
papers have always been known); a paper already stored keeps the id it has."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

from rag.types import PaperRecord

# How many of the abstract's first words join the title in a record's title key: enough to tell apart two
# papers that share a title ("Attention is all you need" and its many namesakes), few enough that a copy whose
# later sentences were edited or whose LaTeX was rendered differently still matches.
OPENING_WORDS = 8
_WORD = re.compile(r"[^\W_]+")
TITLE = "title:"
SLOT = "slot:"


def keys(record: PaperRecord) -> list[str]:
    """The keys by which `record` is recognised as a paper already seen."""
    out = []
    if record.arxiv_id:
        out.append(f"arxiv:{record.arxiv_id.casefold()}")
    if record.doi:
        out.append(f"doi:{record.doi.casefold()}")
    if record.title:
        title = " ".join(_WORD.findall(record.title.casefold()))
        opening = " ".join(_WORD.findall(record.abstract.casefold())[:OPENING_WORDS])
        out.append(f"{TITLE}{title}|{opening}")
    return out


def slot(record: PaperRecord) -> str:
    """Where in its file a record sits, for telling an edited paper from a new one (rag.ingest): its title, else
    its position."""
    if record.title:
        return SLOT + "title:" + " ".join(record.title.casefold().split())
    return f"{SLOT}position:{record.source.position}"


def catalogue_keys(record: PaperRecord) -> list[str]:
    """The keys the catalogue keeps for a stored record, each with the record's file: its identity keys and its
    slot, so that an ingest looks up only the stored papers its records may be, at any collection size."""
    return [*keys(record), slot(record)]


Known = Mapping[str, Mapping[str, str]]  # key → {file: id of the stored paper that file's record is of}


def assign(
    records: Sequence[PaperRecord], known: Known | None = None, held: Sequence[list[str]] | None = None
) -> list[PaperRecord]:
    """`records` with each one's paper id settled: records sharing a key are one paper, whose id is a stored
    paper's (`known`) where any key is known, else the one a record already carries, else from the group's
    arXiv id, else its DOI, else the first record's abstract. A title key joins records of different files only.
    `held` is each record's keys where the caller has them already."""
    known = known or {}
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    held = held if held is not None else [keys(record) for record in records]
    first_with: dict[str, int] = {}
    for i, record in enumerate(records):
        for key in held[i]:
            j = first_with.setdefault(key, i)
            if not key.startswith(TITLE) or records[j].source.file != record.source.file:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(records)):
        groups[root(i)].append(i)
    out = list(records)
    for members in groups.values():
        group = [records[i] for i in members]
        paper_id = _group_id(group, [held[i] for i in members], known)
        for i, record in zip(members, group, strict=True):
            own = record.own_id
            wanted = None if paper_id == own else paper_id
            if record.assigned_id != wanted:
                out[i] = record.model_copy(update={"assigned_id": wanted})
    return out


def _group_id(group: Sequence[PaperRecord], held: Sequence[list[str]], known: Known) -> str:
    """The id of one group of records (`held`: each record's keys)."""
    for record, record_keys in zip(group, held, strict=True):
        for key in record_keys:
            by_file = known.get(key, {})
            found = [pid for file, pid in by_file.items() if not key.startswith(TITLE) or file != record.source.file]
            if found:
                return found[0]
    carried = next((r.assigned_id for r in group if r.assigned_id), None)
    if carried is not None:
        return carried
    ranked = sorted(group, key=lambda r: (r.arxiv_id is None, r.doi is None))
    return ranked[0].own_id

"""The keyword index's terms against FTS5's own tokenizer: keyword retrieval alone, over the stored chunks, on the
answerable questions of a question file (the development questions by default), as hit rate at 5 and MRR of a
gold paper. The index makes its terms in Python (rag/lexical.py: Snowball stems, Lucene's stop words, which FTS5
has no option for); FTS5's `porter unicode61` would make them itself from the title and text.

    python -m rag.evaluation.lexical_terms [--questions FILE ...]

Both indexes are built in memory from the catalogue's chunks; the store is only read."""

from __future__ import annotations

import argparse
import re
import sqlite3
from pathlib import Path

from rag.evaluation.questions import load_questions, resolve_gold

import rag
from rag.catalogue import open_catalogue
from rag.config import load_settings
from rag.lexical import terms

QUESTIONS = Path(__file__).resolve().parent / "questions.jsonl"
DEPTH = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, nargs="+", default=[QUESTIONS])
    args = parser.parse_args()
    settings = load_settings()
    papers = {p.paper_id: p for p in rag.list_papers(settings=settings)}
    stored = sqlite3.connect(f"file:{open_catalogue(settings).path}?mode=ro", uri=True)
    rows = stored.execute("SELECT paper_id, text FROM chunks ORDER BY rid").fetchall()
    memory = sqlite3.connect(":memory:")
    memory.execute(
        "CREATE VIRTUAL TABLE ours USING fts5 (body, tokenize = \"unicode61 remove_diacritics 0 tokenchars '_'\")"
    )
    memory.execute("CREATE VIRTUAL TABLE porter USING fts5 (body, tokenize = 'porter unicode61')")
    paper_of: dict[int, str] = {}
    for rowid, (paper_id, chunk) in enumerate(rows, 1):
        text = f"{papers[paper_id].title or ''}\n{chunk}"
        memory.execute("INSERT INTO ours(rowid, body) VALUES (?, ?)", (rowid, " ".join(terms(text))))
        memory.execute("INSERT INTO porter(rowid, body) VALUES (?, ?)", (rowid, text))
        paper_of[rowid] = paper_id
    for path in args.questions:
        questions = [q for q in load_questions(path) if q.answerable]
        gold = resolve_gold(questions, papers)
        scores = {"index terms": [0.0, 0.0], "fts5 porter unicode61": [0.0, 0.0]}
        counted = 0
        for question in questions:
            wanted = gold.get(question.id)
            if not wanted:
                continue
            counted += 1
            queries = {
                "index terms": terms(question.question),
                "fts5 porter unicode61": re.findall(r"\w\w+", question.question.lower()),
            }
            for name, words in queries.items():
                table = "ours" if name == "index terms" else "porter"
                match = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
                found = memory.execute(
                    f"SELECT rowid FROM {table} WHERE {table} MATCH ? ORDER BY bm25({table}) LIMIT ?", (match, DEPTH)
                ).fetchall()
                ranked = list(dict.fromkeys(paper_of[r] for (r,) in found))
                scores[name][0] += any(p in wanted for p in ranked[:5])
                scores[name][1] += next((1 / (i + 1) for i, p in enumerate(ranked) if p in wanted), 0.0)
        print(f"{path.name}: {counted} answerable questions with gold papers")
        for name, (hits, reciprocal) in scores.items():
            print(f"  {name:<22} hit@5 {hits / counted:.3f}   MRR {reciprocal / counted:.3f}")


if __name__ == "__main__":
    main()

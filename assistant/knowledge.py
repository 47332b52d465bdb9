"""Retrieval over the curated knowledge base (docs/knowledge/*.md).

Each ``## `` section of a document is one passage; the ``## Sources`` section
is not a passage but the references cited with every passage of its file.
Passages are ranked by TF-IDF cosine similarity (scikit-learn) with an
analyser that keeps hyphenated terms whole ("pre-b", "grad-cam") as well as
their parts, folds British spellings ("haematogone") and plurals. A passage's score
is its cosine similarity times the idf-weighted share of the question's terms
it contains. A question that names no topic of the knowledge base (no word of
any title or heading), or whose best score is below ``MIN_SCORE``, has no
answer here: the assistant then says so instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

# Below this score a passage does not answer the question. Chosen by looking at
# the scores of a few dozen questions: domain questions the knowledge base
# covers score 0.4-0.8 for their best passage, off-topic ones 0 (they name no
# topic), and questions it only grazes 0.1-0.25 ("prognosis of Pro-B ALL in
# adults over 60" 0.13: I don't know; "treatment of ALL" 0.21: the nearest
# passage, on classification, is quoted with its citation). Lexical retrieval
# cannot tell "grazes" from "answers" perfectly; the citation lets the reader judge.
MIN_SCORE = 0.15

# "all" is the disease here, not a quantifier; question words carry no topic.
STOP_WORDS = (ENGLISH_STOP_WORDS - {"all"}) | {
    "mean", "meaning", "means", "explain", "explanation", "tell", "describe", "define", "definition",
    "know", "want", "please", "does", "did", "do", "use", "used", "using", "marrow-find",
    "marrowfind", "question", "answer",
}
_TOKEN = re.compile(r"[a-z0-9µ]+(?:-[a-z0-9]+)*")
_SPELLING = (("haem", "hem"), ("leukaem", "leukem"), ("anaem", "anem"), ("–", "-"), ("‑", "-"))


def _stem(token: str) -> str:
    if len(token) > 6 and token.endswith("ing"):
        token = token[:-3]
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 4 and token.endswith("sses"):
        return token[:-2]
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def analyse(text: str) -> list[str]:
    """Lower-cased, spelling-folded tokens; a hyphenated term yields itself and its parts."""
    text = text.lower()
    for old, new in _SPELLING:
        text = text.replace(old, new)
    tokens: list[str] = []
    for token in _TOKEN.findall(text):
        parts = token.split("-")
        for candidate in ([token, *parts] if len(parts) > 1 else [token]):
            if candidate in STOP_WORDS:
                continue
            candidate = _stem(candidate)
            if len(candidate) >= 2 and candidate not in STOP_WORDS:
                tokens.append(candidate)
    return tokens


@dataclass(frozen=True)
class Passage:
    doc: str  # file name in the knowledge folder, e.g. "hematogones.md"
    title: str  # the document's "# " title
    heading: str  # the section's "## " heading
    text: str
    sources: tuple[str, ...]  # the document's references

    @property
    def ref(self) -> str:
        return f"docs/knowledge/{self.doc} § {self.heading}"

    def as_source(self, number: int) -> dict:
        """How a cited passage is stored with a chat message (ChatMessage.sources)."""
        return {
            "n": number,
            "type": "doc",
            "doc": self.doc,
            "title": self.title,
            "section": self.heading,
            "ref": self.ref,
            "references": list(self.sources),
        }


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float


def parse_document(path: Path) -> list[Passage]:
    """Split one Markdown file into its ``## `` sections."""
    title = path.stem.replace("-", " ")
    sections: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            title = line[2:].strip()
        elif line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif sections:
            sections[-1][1].append(line)
    sources: tuple[str, ...] = ()
    passages = []
    for heading, lines in sections:
        if heading.lower() == "sources":
            sources = tuple(line.lstrip("-* ").strip() for line in lines if line.strip())
    for heading, lines in sections:
        body = "\n".join(lines).strip()
        if heading.lower() != "sources" and body:
            passages.append(Passage(doc=path.name, title=title, heading=heading, text=body, sources=sources))
    return passages


class KnowledgeBase:
    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self._vectorizer = TfidfVectorizer(analyzer=analyse, sublinear_tf=True)
        # The heading says what a section is about: count it three times.
        corpus = [f"{p.title}\n{p.heading}\n{p.heading}\n{p.heading}\n{p.text}" for p in passages]
        self._matrix = self._vectorizer.fit_transform(corpus) if passages else None
        # The topics of the knowledge base: the words of its titles and headings.
        self._topics = set(analyse(" ".join(f"{p.title} {p.heading}" for p in passages)))
        self._heading_terms = [set(analyse(p.heading)) for p in passages]

    @classmethod
    def from_directory(cls, directory: Path) -> KnowledgeBase:
        passages: list[Passage] = []
        for path in sorted(directory.glob("*.md")):
            if path.name.lower() != "readme.md":
                passages.extend(parse_document(path))
        return cls(passages)

    def search(self, query: str, *, k: int = 3, min_score: float = MIN_SCORE) -> list[Hit]:
        """The best ``k`` passages scoring at least ``min_score``, best first."""
        terms = set(analyse(query))
        if self._matrix is None or not terms & self._topics:
            return []  # names no topic of the knowledge base: nothing here answers it
        cosine = (self._matrix @ self._vectorizer.transform([query]).T).toarray().ravel()
        # A section whose heading names the question's terms is the one about them.
        in_heading = np.array([len(terms & h) / len(terms) for h in self._heading_terms])
        scores = cosine * self._coverage(query) * (1.0 + 0.5 * in_heading)
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(self.passages[i], float(scores[i])) for i in order if scores[i] >= min_score]

    def _coverage(self, query: str) -> np.ndarray:
        """Per passage, the idf-weighted share of the question's terms it contains.

        Cosine similarity alone rewards a one-word overlap ("what is the
        weather *today*" vs. "how ALL is classified *today*"); a passage
        that answers a question contains most of its distinctive terms.
        Terms the knowledge base has never seen weigh as much as its rarest."""
        vocabulary = self._vectorizer.vocabulary_
        idf = self._vectorizer.idf_
        terms = set(analyse(query))
        weights = np.array([idf[vocabulary[t]] if t in vocabulary else idf.max() for t in terms])
        known = [vocabulary[t] for t in terms if t in vocabulary]
        if not known or weights.sum() == 0:
            return np.zeros(len(self.passages))
        present = (self._matrix[:, known] > 0).toarray().astype(float)
        return present @ idf[known] / weights.sum()

    def passage(self, doc: str, heading: str) -> Passage | None:
        return next((p for p in self.passages if p.doc == doc and p.heading == heading), None)


def knowledge_dir() -> Path:
    return Path(getattr(settings, "ASSISTANT_KNOWLEDGE_DIR", settings.BASE_DIR / "docs" / "knowledge"))


def _fingerprint(directory: Path) -> tuple:
    return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in directory.glob("*.md")))


@lru_cache(maxsize=4)
def _load(directory: str, fingerprint: tuple) -> KnowledgeBase:
    return KnowledgeBase.from_directory(Path(directory))


def knowledge_base() -> KnowledgeBase:
    """The knowledge base, re-read when a document changes (cheap: a few dozen passages)."""
    directory = knowledge_dir()
    return _load(str(directory), _fingerprint(directory))


def excerpt(text: str, limit: int = 700) -> str:
    """The passage as plain prose, cut at a sentence end near ``limit`` characters."""
    plain = re.sub(r"[*_`]+", "", text)
    plain = re.sub(r"\s+", " ", plain).strip()
    if len(plain) <= limit:
        return plain
    cut = plain.rfind(". ", 0, limit)
    return plain[: cut + 1] if cut > limit // 3 else plain[:limit].rstrip() + "…"


def iter_passages() -> Iterator[Passage]:
    yield from knowledge_base().passages

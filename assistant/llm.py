"""The optional language-model backend: any OpenAI-compatible chat endpoint.

Off unless ``ASSISTANT_LLM_URL`` is set. The model receives only the question,
the passages retrieved from the knowledge base (numbered [1], [2], ...) and,
on a case page, the case facts (marked [F]: counts and labels, no patient
identity). Its answer is accepted only if

* it cites at least one of them, and cites nothing else ([7] with three
  passages is rejected), and
* every number in it appears in what it was given (or in the question), so a
  figure can never come from the model's own guess.

Anything else (an error, a timeout, a refusal of these checks) makes the
assistant fall back to its templated answer, and says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

from assistant.knowledge import Hit

FACTS_MARK = "F"
_CITATION = re.compile(r"\[(\d{1,2}|F)\]")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?")

SYSTEM_PROMPT = (
    "You are the case assistant of Marrow-Find, a decision-support tool for acute lymphoblastic leukemia "
    "morphology used by laboratory staff and pathologists. Answer ONLY from the numbered sources and the case "
    "facts given in the user message. Cite every statement with the number of its source in square brackets, "
    "like [1], or [F] for the case facts. Do not add numbers that are not in the sources or facts. If they do "
    "not answer the question, say that you don't know. Be brief (at most 150 words). Never give a diagnosis."
)


class LLMUnavailable(Exception):
    """The endpoint could not give a usable answer; the message says why."""


@dataclass(frozen=True)
class LLMConfig:
    url: str
    model: str
    api_key: str
    timeout_s: float

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/chat/completions"


def llm_config() -> LLMConfig | None:
    url = getattr(settings, "ASSISTANT_LLM_URL", None)
    if not url:
        return None
    return LLMConfig(
        url=url,
        model=settings.ASSISTANT_LLM_MODEL,
        api_key=settings.ASSISTANT_LLM_API_KEY or "",
        timeout_s=float(settings.ASSISTANT_LLM_TIMEOUT_S),
    )


def build_messages(question: str, hits: list[Hit], facts: dict[str, Any] | None) -> list[dict[str, str]]:
    """The whole prompt: the question, the retrieved passages, the case facts. Nothing else."""
    parts = [f"Question: {question.strip()}", "", "Sources:"]
    for number, hit in enumerate(hits, start=1):
        parts.append(f"[{number}] {hit.passage.title} - {hit.passage.heading} ({hit.passage.doc})")
        parts.append(hit.passage.text.strip())
        parts.append("")
    if facts is not None:
        parts.append(f"[{FACTS_MARK}] Case facts from the laboratory database (JSON):")
        parts.append(json.dumps(facts, sort_keys=True, ensure_ascii=False))
        parts.append("")
    parts.append("Answer with citations.")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(parts)}]


def chat(config: LLMConfig, messages: list[dict[str, str]]) -> str:
    """POST ``{url}/chat/completions`` and return the first choice's text."""
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    body = {"model": config.model, "messages": messages, "temperature": 0}
    try:
        response = requests.post(config.endpoint, json=body, headers=headers, timeout=config.timeout_s)
    except requests.Timeout:
        raise LLMUnavailable(f"no answer within {config.timeout_s:g} s") from None
    except requests.RequestException as exc:
        raise LLMUnavailable(f"could not reach the endpoint ({exc.__class__.__name__})") from None
    if response.status_code != 200:
        raise LLMUnavailable(f"the endpoint answered HTTP {response.status_code}")
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMUnavailable("the endpoint's reply is not an OpenAI-style chat completion") from None
    if not isinstance(content, str) or not content.strip():
        raise LLMUnavailable("the endpoint returned an empty answer")
    return content.strip()


@dataclass(frozen=True)
class CheckedAnswer:
    text: str
    cited_passages: list[int]  # 1-based numbers of the passages it cites
    cites_facts: bool


def _numbers(text: str) -> set[str]:
    """Every number in ``text``, normalised ("0.90" and "0.9" are one number).
    A comma before exactly three digits is a thousands separator, otherwise a decimal comma."""
    found = set()
    for raw in _NUMBER.findall(text):
        _, _, after_comma = raw.partition(",")
        value = raw.replace(",", "") if len(after_comma) == 3 else raw.replace(",", ".")
        found.add(f"{float(value):g}")
    return found


def _allowed_numbers(question: str, hits: list[Hit], facts: dict[str, Any] | None) -> set[str]:
    allowed = _numbers(question)
    for hit in hits:
        allowed |= _numbers(f"{hit.passage.title} {hit.passage.heading} {hit.passage.text}")
    if facts is not None:
        text = json.dumps(facts)
        allowed |= _numbers(text)
        # A fraction in the facts may be stated as a percentage.
        for value in re.findall(r"\d+\.\d+", text):
            percent = 100 * float(value)
            allowed |= {f"{round(percent):g}", f"{round(percent, 1):g}", f"{round(percent, 2):g}"}
    return allowed


def check_answer(text: str, question: str, hits: list[Hit], facts: dict[str, Any] | None) -> CheckedAnswer:
    """Accept ``text`` only if it cites what it was given and invents no number.
    Raises ``LLMUnavailable`` with the reason otherwise."""
    markers = _CITATION.findall(text)
    if not markers:
        raise LLMUnavailable("its answer cited no source")
    passages: list[int] = []
    cites_facts = False
    for marker in markers:
        if marker == FACTS_MARK:
            if facts is None:
                raise LLMUnavailable("it cited case facts it was not given")
            cites_facts = True
            continue
        number = int(marker)
        if not 1 <= number <= len(hits):
            raise LLMUnavailable(f"it cited a source [{number}] it was not given")
        if number not in passages:
            passages.append(number)
    invented = _numbers(_CITATION.sub(" ", text)) - _allowed_numbers(question, hits, facts)
    if invented:
        raise LLMUnavailable(f"its answer contains numbers found in no source ({', '.join(sorted(invented))})")
    return CheckedAnswer(text=text, cited_passages=passages, cites_facts=cites_facts)

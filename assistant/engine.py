"""Answering one question, and keeping the conversation.

The order of decisions, and why:

1. **Lab isolation first.** Every case the question names (an accession
   number, "case 12") is looked up among the asker's own lab cases only. One
   that is not found there is refused with the same words whether it exists in
   another lab or nowhere, so a question can never confirm another lab's case.
2. **Case questions** (image numbers, unreviewed images, counts, blast %, WHO
   flag, summary) are answered from ``CaseFacts``: numbers from the database,
   never from a language model.
3. **Domain questions** are answered from the knowledge base by retrieval,
   citing the documents. Nothing relevant -> an honest "I don't know".
4. With ``ASSISTANT_LLM_URL`` set, a domain question goes to the language
   model with only the retrieved passages and the case facts; its answer must
   pass ``llm.check_answer`` or the templated answer is given instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction

from assistant import answers, intents, llm
from assistant.facts import case_facts
from assistant.knowledge import knowledge_base
from assistant.models import ChatMessage, Conversation
from diagnostics import access
from diagnostics.models import Case

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 1000


class Kind:
    CASE = "case"  # templated, from the database
    KNOWLEDGE = "knowledge"  # templated, from the knowledge base
    LLM = "llm"  # the language model's checked answer
    UNKNOWN = "unknown"  # nothing relevant: I don't know
    REFUSED = "refused"  # names a case outside the asker's labs
    NEED_CASE = "need_case"  # a case question without a case


@dataclass
class Answer:
    text: str
    kind: str
    sources: list[dict] = field(default_factory=list)
    case: Case | None = None
    note: str = ""  # why the language model's answer was not used, when it was not


def resolve_case(user, reference: str) -> Case | None:
    """A case of the user's labs by accession number (case-insensitive) or id; None otherwise."""
    cases = access.cases_for(user).select_related("lab")
    found = cases.filter(accession_number__iexact=reference).first()
    if found is None and reference.isdigit():
        found = cases.filter(pk=int(reference)).first()
    return found


def ask(user, question: str, case: Case | None = None) -> Answer:
    """Answer ``question`` for ``user``, about ``case`` when asked from a case page."""
    question = (question or "").strip()[:MAX_QUESTION_CHARS]
    if case is not None and not access.cases_for(user).filter(pk=case.pk).exists():
        return Answer(answers.refused(f"#{case.pk}"), Kind.REFUSED)  # views pass only the user's cases
    parsed = intents.parse(question)
    for reference in parsed.case_refs:
        named = resolve_case(user, reference)
        if named is None:
            return Answer(answers.refused(reference), Kind.REFUSED)
        case = named
    kb = knowledge_base()
    if parsed.intent != intents.Intent.DOMAIN:
        if case is None:
            return Answer(answers.NEED_CASE, Kind.NEED_CASE)
        facts = case_facts(case)
        text, extra = answers.case_answer(facts, parsed, kb)
        return Answer(text, Kind.CASE, [answers.facts_source(facts), *extra], case)

    hits = kb.search(question)
    if not hits:
        return Answer(answers.I_DONT_KNOW, Kind.UNKNOWN, case=case)
    config = llm.llm_config()
    note = ""
    if config is not None:
        facts = case_facts(case) if case is not None else None
        prompt_facts = facts.for_llm() if facts is not None else None
        try:
            reply = llm.chat(config, llm.build_messages(question, hits, prompt_facts))
            checked = llm.check_answer(reply, question, hits, prompt_facts)
        except llm.LLMUnavailable as exc:
            note = f"The language model's answer was not used ({exc}); this answer is quoted from the knowledge base."
            log.info("assistant LLM fallback: %s", exc)
        else:
            sources = [hits[n - 1].passage.as_source(n) for n in checked.cited_passages]
            if checked.cites_facts and facts is not None:
                sources.append(answers.facts_source(facts))
            return Answer(checked.text, Kind.LLM, sources, case)
    text, sources = answers.knowledge_answer(hits)
    return Answer(text, Kind.KNOWLEDGE, sources, case, note)


def conversation_for(user, case: Case | None) -> Conversation:
    """The user's current conversation (on this case, or the general one)."""
    conversation = Conversation.objects.filter(user=user, case=case).order_by("-created_at", "-id").first()
    return conversation or Conversation.objects.create(user=user, case=case)


def history(user, case: Case | None, limit: int = 50) -> list[ChatMessage]:
    conversation = Conversation.objects.filter(user=user, case=case).order_by("-created_at", "-id").first()
    if conversation is None:
        return []
    messages = list(conversation.messages.order_by("-created_at", "-id")[:limit])
    return messages[::-1]


@transaction.atomic
def ask_and_record(user, question: str, case: Case | None = None) -> tuple[ChatMessage, ChatMessage, Answer]:
    """Answer and store both messages in the user's conversation. A refused
    question is stored in the conversation it was asked in, with no case data."""
    answer = ask(user, question, case)
    conversation = conversation_for(user, case)
    asked = ChatMessage.objects.create(conversation=conversation, role="user", text=question.strip()[:MAX_QUESTION_CHARS])
    sources = list(answer.sources)
    if answer.note:
        sources.append({"type": "note", "label": answer.note})
    replied = ChatMessage.objects.create(
        conversation=conversation, role="assistant", text=answer.text, sources=sources
    )
    return asked, replied, answer

"""The case assistant (the paper's "AI chatbot").

* ``facts``: a case's numbers from the database (the only source of numbers);
* ``knowledge``: retrieval over docs/knowledge/*.md (scikit-learn TF-IDF);
* ``intents``: which case, which image and what a question asks;
* ``answers``: templated answers, with citations;
* ``llm``: the optional OpenAI-compatible backend and the checks on its answers;
* ``engine``: ``ask`` and ``ask_and_record`` (conversations stored per user).

Offline by default: no network unless ``ASSISTANT_LLM_URL`` is set.
"""

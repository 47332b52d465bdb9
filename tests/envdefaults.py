"""Loaded by pytest before Django starts (``-p tests.envdefaults`` in pytest.ini).

Test-only defaults for settings that production requires or hardens, so that a
developer can point the tests at PostgreSQL with nothing but DATABASE_URL:
* a throwaway SECRET_KEY when none is given;
* no HTTPS redirect (the test client speaks plain HTTP);
* plain static storage (no collectstatic manifest needed);
* eager inference (INFERENCE_COMPILE=off): a worker test must not start a compiler
  in the background; tests/ml/test_predict_compiled.py turns compiling on itself.
Values already in the environment win.
"""

import os
import secrets

os.environ.setdefault("SECURE_HTTPS", "0")
os.environ.setdefault("STATIC_STORAGE", "plain")
os.environ.setdefault("INFERENCE_COMPILE", "off")
if os.environ.get("DATABASE_URL") and not os.environ.get("SECRET_KEY"):
    os.environ["SECRET_KEY"] = "test-only-" + secrets.token_urlsafe(40)

# The test session is an entry point: it makes the embedded folders (var/, the
# file-system broker's folders, the generated key), which importing the settings no longer does.
from marrowfind import embedded

embedded.prepare()

"""Where things are in the app's navigation, for messages that send people there ("create a key under …").

Each path is the text of a header menu entry, then the text of a link or button on that page;
tests/accounts/test_menus.py follows every path through the rendered pages, so renaming an entry fails a test instead of
leaving messages that name a menu nobody can find."""

CREATE_API_KEY = "Settings & keys → Create API key"
SECRETS = "Settings & keys → Secrets"
GUARD_POLICIES = "Evaluators → guard policies"
DATA_RETENTION = "Settings & keys → Data retention"

ALL = (CREATE_API_KEY, SECRETS, GUARD_POLICIES, DATA_RETENTION)

"""The one exception type users see.

Library code raises `SgbenchError` for every mistake a user can make (bad option, bad file, bad
recipe). The CLI turns it into a one-line message and a non-zero exit; asserts guard internal
invariants only.
"""


class SgbenchError(Exception):
    """A user-facing error: the message says what was wrong and what is allowed."""

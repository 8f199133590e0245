"""What a password must be: at least 12 characters, not a known breached or common one, not guessable.

zxcvbn (Dropbox's estimator, its Python port) matches a password against frequency lists built from breached
passwords, common names and words, and the user's own details, and estimates how many guesses it would take.
A password it scores below 3 ("safely unguessable: moderate protection from offline slow-hash attacks") or
that is one of its breached passwords as a whole is refused, with its own advice.
"""

from __future__ import annotations

from collections.abc import Iterable

from zxcvbn import zxcvbn

MIN_LENGTH = 12
MIN_SCORE = 3
_CHECKED_LENGTH = 100
"""zxcvbn's cost grows with the length; past this much a password is long enough, and only its start is scored."""


def password_problem(password: str, *, user_inputs: Iterable[str] = ()) -> str | None:
    """None when `password` will do, else one sentence saying what is wrong with it."""
    if len(password) < MIN_LENGTH:
        return f"The password must be at least {MIN_LENGTH} characters long."
    if len(password) > 1000:
        return "The password must be at most 1,000 characters long."
    inputs = [part for text in user_inputs for part in text.replace("@", " ").replace(".", " ").split() if part]
    result = zxcvbn(password[:_CHECKED_LENGTH], user_inputs=inputs)
    whole = result["sequence"]
    if len(whole) == 1 and whole[0].get("dictionary_name") == "passwords":
        return "This password appears in lists of breached passwords; choose another."
    if result["score"] < MIN_SCORE:
        advice = " ".join([result["feedback"].get("warning") or "", *result["feedback"].get("suggestions", [])])
        return f"This password is too easy to guess. {advice}".strip()
    return None

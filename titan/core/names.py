"""Job ids and DAG names: what they may hold, and the folder name each maps to.

They are printed in tables, logs and terminals, and name folders on workers, so a control character
(NUL, an escape that moves a terminal's cursor, a newline that forges a log line) or a name of megabytes
is refused at submit. The SDK checks first for a quick error; the master checks again and is the
authority (titan/net/protocol.py and titan/master/requests.py).
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Optional

from titan import defaults

# Unicode categories a name may not hold: controls (C0, DEL, C1 such as CSI), format characters (the
# bidirectional overrides that reorder what a terminal shows), line and paragraph separators, surrogates.
REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}
FOLDER_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
FOLDER_SLUG_CHARS = 40
FOLDER_HASH_CHARS = 16
# Never in a name kept as it is (not in FOLDER_SAFE), so a derived folder name cannot equal a kept one.
FOLDER_HASH_MARK = "~"
SHOWN_CHARS = 60   # of a refused name, in its error message


def name_problem(name) -> Optional[str]:
    """What is wrong with a job id or DAG name, or None: it must be a non-empty string of at most
    MAX_ID_CHARS characters, none of them a control character."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name.strip():
        return "must not be empty"
    if len(name) > defaults.MAX_ID_CHARS:
        return f"is {len(name)} characters long; at most {defaults.MAX_ID_CHARS} are allowed"
    if name.isprintable():   # holds no Other or Separator character but ' ': none refused (the common case)
        return None
    for position, char in enumerate(name):
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return (f"holds the control character U+{ord(char):04X} at position {position}; "
                    "use printable characters only")
    return None


def shown_name(name) -> str:
    """A refused name as an error message may show it: escaped, and cut short."""
    shown = repr(name)
    return shown if len(shown) <= SHOWN_CHARS else f"{shown[:SHOWN_CHARS]}... ({len(name)} characters)"


def folder_name(name: str) -> str:
    """A folder name for `name`, different for different names. A name of letters, digits, '-', '_' and
    '.' that does not start with '.' and is short is kept as it is ('DAG-x'); any other ('..', 'a/b',
    a long one) becomes a slug of it, '~' and a hash of the whole name, so no two names share a folder
    and none is '.' or '..'."""
    if len(name) <= FOLDER_SLUG_CHARS and not name.startswith(".") and set(name) <= FOLDER_SAFE and name:
        return name
    slug = "".join(c if c in FOLDER_SAFE else "_" for c in name[:FOLDER_SLUG_CHARS]).lstrip(".")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:FOLDER_HASH_CHARS]
    return f"{slug}{FOLDER_HASH_MARK}{digest}"

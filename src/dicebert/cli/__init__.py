"""The installed commands besides ``dicebert-train`` (Hydra): one argument style, argparse.

Every one takes positional paths plus ``--options``, prints ``--help``, and ends a user error (a
:class:`~dicebert.errors.DicebertError`) as one ``error: ...`` line on stderr with exit status 2,
argparse's status for a bad command line; a bug keeps its traceback.
"""

from __future__ import annotations

import sys

from dicebert.errors import DicebertError

#: Exit status of a user error (as argparse's for a bad option).
USAGE_ERROR = 2


def report_error(err: DicebertError) -> int:
    """Print ``error: <message>`` (one line) to stderr and return the exit status."""
    message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR

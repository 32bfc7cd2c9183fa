"""gputui: a terminal dashboard for GPU cluster operations."""

import warnings

__version__ = "0.1.0"

# asyncssh still knows DSA keys, and cryptography 51 warns at their import that DSA will go. The
# warning is for asyncssh's authors, not an operator: printed on every command's stderr, it broke
# `gputui check`'s one-line answers and the usage errors' first line.
warnings.filterwarnings("ignore", message="DSA is deprecated", module="asyncssh")

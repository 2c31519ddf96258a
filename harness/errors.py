"""The one exception type the harness raises for bad input or a missing dependency.

Its message is a single line, so the CLI can print it as is and exit with status 2.
"""


class HarnessError(Exception):
    """Bad input, a missing backend, or an unavailable device: one line saying what is wrong."""

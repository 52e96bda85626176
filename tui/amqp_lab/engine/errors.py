"""What a run raises when the user must fix something."""


class RunError(Exception):
    """The run could not start or went wrong in a way the user must fix; the message says how."""

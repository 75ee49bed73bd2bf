"""User-facing errors: one clear line, exit status 2, no traceback."""


class UserInputError(Exception):
    """Bad input from the user (a file, a flag, a name).

    The message is a single line that names the file (and line) or the argument and
    says what was expected. Command-line entry points print it and exit with status 2.
    """

    exit_code = 2

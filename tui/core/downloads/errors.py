"""Download errors. Each message is one line that names the repo/file and says what to do;
none ever contains a token or a signed URL."""

from __future__ import annotations


class DownloadError(Exception):
    """A download or plan failed; ``str(exc)`` is the one line to show."""


class HubError(DownloadError):
    """The Hub refused or could not answer (``status`` is the HTTP status, or None)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class NotEnoughSpace(DownloadError):
    def __init__(self, message: str, need: int, free: int):
        super().__init__(message)
        self.need, self.free = need, free


class VerifyError(DownloadError):
    """A file's sha256 (or git blob sha1) did not match the Hub's; it kept no final name."""


class Busy(DownloadError):
    """Another process is downloading the same file."""


class Cancelled(DownloadError):
    """The cancel event was set; partial files are kept for the next run."""

"""The Hugging Face Hub, through the real ``huggingface_hub`` client: endpoint, token,
listing and per-file metadata, with its errors turned into one-line :class:`HubError`\\ s.

Decisions:

* ``HF_ENDPOINT`` is read on every call (``huggingface_hub`` reads it once at import), so
  changing it in the environment of a long-lived process works.
* The token is ``huggingface_hub.get_token()``: ``HF_TOKEN``, then the token file written by
  ``hf auth login``. It goes to the Hub only; file content fetched from another origin (the
  CDN) never gets it (:func:`auth_headers`), exactly like ``huggingface_hub`` itself.
  It is never put in a message.
* Xet is not used. Content comes over plain HTTP(S) from the ``Location`` the Hub's
  ``/resolve`` answers with (for Xet-backed repos that is the Xet bridge/CDN, which serves
  ``Range``). Reasons: per-download cancel (hf_xet has none; callbacks' exceptions are
  swallowed), resume across restarts with our own ``.part`` files (the Xet chunk cache is
  bounded, so a 50 GB shard restarts), and smooth progress from our own byte counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "https://huggingface.co"


def endpoint(override: str | None = None) -> str:
    return (override or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def token() -> str | None:
    """The user's Hub token (HF_TOKEN, else the token file), or None."""
    from huggingface_hub import get_token

    try:
        return get_token()
    except Exception:  # an unreadable token file must not stop a public download
        return None


def api(ep: str, tok: str | None):
    from huggingface_hub import HfApi

    # token=False: send nothing (HfApi would otherwise look for one again)
    return HfApi(endpoint=ep, token=tok or False, library_name="llmdeck")


def origin(url: str) -> tuple[str, str, int | None]:
    u = urlsplit(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return u.scheme, (u.hostname or "").lower(), port


def auth_headers(url: str, ep: str, tok: str | None) -> dict[str, str]:
    """``Authorization`` for ``url`` only when it is on the Hub's own origin."""
    if tok and origin(url) == origin(ep):
        return {"Authorization": f"Bearer {tok}"}
    return {}


def redact(url: str) -> str:
    """A URL fit for a message: no query string (signed URLs carry credentials there)."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}{u.path}"


@dataclass
class FileLocation:
    url: str  # where the bytes are (signed CDN URL, or the /resolve URL itself); never show it
    size: int | None
    commit: str | None
    etag: str | None


def file_location(repo_id: str, path: str, revision: str, ep: str, tok: str | None) -> FileLocation:
    """HEAD ``/resolve``: where the content is and its size. Called before every transfer
    attempt because the location is a signed URL that expires."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, path, revision=revision, endpoint=ep)
    try:
        m = get_hf_file_metadata(url, token=tok or False, endpoint=ep, library_name="llmdeck")
    except Exception as exc:
        raise translate(exc, repo_id, ep, tok, path=path) from None
    return FileLocation(m.location, m.size, m.commit_hash, m.etag)


def translate(exc: BaseException, repo_id: str, ep: str, tok: str | None, *, path: str | None = None,
              revision: str | None = None):
    """A huggingface_hub / network exception as one HubError line naming the repo."""
    from huggingface_hub import errors as e

    from tui.core.downloads.errors import DownloadError, HubError

    if isinstance(exc, DownloadError):
        return exc
    status = getattr(getattr(exc, "response", None), "status_code", None)
    where = f"{repo_id}" + (f" ({path})" if path else "")
    if isinstance(exc, e.GatedRepoError):
        return HubError(f"{repo_id} is gated: accept its conditions at {ep}/{repo_id} with your account, "
                        "then set HF_TOKEN (or run `hf auth login`)", status)
    if isinstance(exc, e.RepositoryNotFoundError):
        if status == 401:
            if tok:
                return HubError(f"{repo_id}: the Hub refused the token (401): check HF_TOKEN or the token "
                                "file (`hf auth login`); the repo may be private or gated", 401)
            return HubError(f"{repo_id}: the Hub answered 401: the repo does not exist, or it is private "
                            "or gated and needs a token: set HF_TOKEN or run `hf auth login`", 401)
        if status == 403:
            return HubError(f"{repo_id}: access denied (403): your token lacks access to this repo", 403)
        return HubError(f"{repo_id}: no such model repo on {ep} (404): check repo_id in models.json", status)
    if isinstance(exc, e.RevisionNotFoundError):
        return HubError(f"{repo_id}: revision {revision or '?'} not found on {ep} (404)", status)
    if isinstance(exc, (e.RemoteEntryNotFoundError, e.EntryNotFoundError)):
        return HubError(f"{repo_id}: {path or 'file'} not found on {ep} (404)", status)
    if isinstance(exc, e.OfflineModeIsEnabled):
        return HubError(f"{where}: HF_HUB_OFFLINE is set: unset it to download", None)
    if isinstance(exc, e.HfHubHTTPError) and status == 429:
        after = exc.response.headers.get("Retry-After") if exc.response is not None else None
        when = f"retry in {after} s" if after and after.strip().isdigit() else "retry later"
        return HubError(f"{where}: the Hub is rate-limiting requests (429): {when}"
                        + ("" if tok else "; a token (HF_TOKEN or `hf auth login`) raises the limit"), 429)
    if isinstance(exc, e.HfHubHTTPError):
        msg = getattr(exc, "server_message", None) or ""
        msg = msg.strip().splitlines()[0] if msg.strip() else ""
        return HubError(f"{where}: the Hub answered {status}" + (f": {msg}" if msg else ""), status)
    if isinstance(exc, e.LocalEntryNotFoundError):
        # get_hf_file_metadata wraps connection problems and bad metadata in this
        cause = exc.__cause__ or exc.__context__
        if cause is not None and not isinstance(cause, e.LocalEntryNotFoundError):
            return translate(cause, repo_id, ep, tok, path=path, revision=revision)
        return HubError(f"{where}: could not get file metadata from {ep}", None)
    if isinstance(exc, e.FileMetadataError):
        return HubError(f"{where}: the Hub's answer lacked file metadata ({exc})", None)
    name = type(exc).__name__
    if "Connect" in name or "Timeout" in name or "Network" in name or isinstance(exc, OSError):
        return HubError(f"{where}: cannot reach {ep}: {exc or name}", None)
    return HubError(f"{where}: {name}: {exc}", status)

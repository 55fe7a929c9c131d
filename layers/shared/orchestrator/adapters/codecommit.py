"""CodeCommit reads: which paths a push changed, and the files of a folder at a commit."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.clients import aws_client


@dataclass(frozen=True)
class RepositoryFile:
    path: str  # relative to the folder that was read
    content: bytes
    executable: bool = False


class CodeCommitAdapter:
    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("codecommit")
        return self._client

    def changed_paths(self, repository: str, after: str, before: str | None = None) -> list[str]:
        """Paths added, modified or deleted between two commits (all of `after` when `before` is None)."""
        paths: set[str] = set()
        request: dict[str, Any] = {"repositoryName": repository, "afterCommitSpecifier": after}
        if before:
            request["beforeCommitSpecifier"] = before
        while True:
            page = self.client.get_differences(**request)
            for difference in page.get("differences", []):
                for side in ("beforeBlob", "afterBlob"):
                    path = difference.get(side, {}).get("path")
                    if path:
                        paths.add(path)
            token = page.get("NextToken")
            if not token:
                return sorted(paths)
            request["NextToken"] = token

    def branch_head(self, repository: str, branch: str) -> str | None:
        """The commit the branch points at now (GetBranch), or None if the branch no longer exists."""
        try:
            reply = self.client.get_branch(repositoryName=repository, branchName=branch)
        except self.client.exceptions.BranchDoesNotExistException:
            return None
        return (reply.get("branch") or {}).get("commitId")

    def read_folder(self, repository: str, commit: str, folder: str) -> list[RepositoryFile]:
        """Every file under `folder` at `commit`, recursively, with paths relative to `folder`."""
        root = folder.strip("/")
        return sorted(self._walk(repository, commit, root, root), key=lambda item: item.path)

    def _walk(self, repository: str, commit: str, root: str, folder: str) -> Iterator[RepositoryFile]:
        listing = self.client.get_folder(repositoryName=repository, commitSpecifier=commit, folderPath=folder)
        for entry in listing.get("files", []):
            blob = self.client.get_blob(repositoryName=repository, blobId=entry["blobId"])
            yield RepositoryFile(
                path=posixpath.relpath(entry["absolutePath"], root) if root else entry["absolutePath"],
                content=blob["content"],
                executable=entry.get("fileMode") == "EXECUTABLE",
            )
        for sub in listing.get("subFolders", []):
            yield from self._walk(repository, commit, root, sub["absolutePath"])

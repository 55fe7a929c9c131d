"""CodeCommit on the embedded AWS, backed by real bare git repositories under a work directory.

CreateRepository makes moto's repository and ``<root>/<name>.git``; ``git push`` to ``clone_url_for(name)``
runs a post-receive hook that tells the server, which emits "CodeCommit Repository State Change". The
read APIs moto lacks (GetBranch, ListBranches, GetCommit, GetDifferences, GetFolder, GetFile, GetBlob)
read the git repository itself.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcloud.aws.protocol import AwsError, RequestInfo

if TYPE_CHECKING:
    from localcloud.aws.server import EmbeddedAws

ZERO = "0" * 40
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
HOOK_ROUTE = "codecommit/post-receive"
METADATA_FILE = "localcloud-repository.json"
MAX_FILE_BYTES = 6 * 1024 * 1024
_HEX = re.compile(r"^[0-9a-f]{4,40}$")
_FILE_MODES = {"100644": "NORMAL", "100755": "EXECUTABLE", "120000": "SYMLINK"}

_HOOK = """#!{python}
# Installed by the local cloud: tells the embedded AWS which references this push changed.
import json, sys, urllib.request
updates = [line.split() for line in sys.stdin.read().splitlines() if line.strip()]
payload = {{"repositoryName": {name!r},
           "updates": [{{"oldCommitId": o, "newCommitId": n, "ref": r}} for o, n, r in updates]}}
request = urllib.request.Request({url!r}, data=json.dumps(payload).encode(),
                                 headers={{"Content-Type": "application/json"}})
try:
    urllib.request.build_opener(urllib.request.ProxyHandler({{}})).open(request, timeout=30).read()
except Exception as error:
    print("local cloud not notified of this push:", error, file=sys.stderr)
"""


class LocalCodeCommit:
    """Real git repositories behind the CodeCommit API of an ``EmbeddedAws``."""

    def __init__(self, aws: EmbeddedAws, root: Path):
        self.aws = aws
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        overrides = {
            "CreateRepository": self._create_repository,
            "DeleteRepository": self._delete_repository,
            "GetBranch": self._get_branch,
            "ListBranches": self._list_branches,
            "GetCommit": self._get_commit,
            "GetDifferences": self._get_differences,
            "GetFolder": self._get_folder,
            "GetFile": self._get_file,
            "GetBlob": self._get_blob,
        }
        for action, fn in overrides.items():
            aws.register_override("codecommit", action, fn)
        aws.add_internal_route(HOOK_ROUTE, self._on_push)

    # repositories --------------------------------------------------------------------------------
    @property
    def backend(self) -> Any:
        return self.aws.backend("codecommit")

    def git_dir(self, repository_name: str) -> Path:
        return self.root / f"{repository_name}.git"

    def clone_url_for(self, repository_name: str) -> str:
        """A URL that ``git clone`` / ``git push`` accept for the repository (a local file URL)."""
        self._metadata(repository_name)
        return self.git_dir(repository_name).resolve().as_uri()

    def create_repository(self, repository_name: str, description: str = "") -> dict[str, Any]:
        """CreateRepository: moto's repository plus a bare git repository with the push hook."""
        metadata = dict(self.backend.create_repository(repository_name, description))
        git_dir = self.git_dir(repository_name)
        if not (git_dir / "HEAD").exists():
            self._git(None, "init", "--bare", "--quiet", str(git_dir))
        (git_dir / METADATA_FILE).write_text(
            json.dumps(
                {
                    "repositoryName": repository_name,
                    "repositoryDescription": description,
                    "repositoryId": metadata["repositoryId"],
                }
            )
        )
        self._install_hook(repository_name)
        return metadata

    def attach(self) -> None:
        """On server start: adopt repositories already under the root and point their hooks here."""
        for git_dir in sorted(self.root.glob("*.git")):
            saved = git_dir / METADATA_FILE
            if not saved.exists():
                continue
            info = json.loads(saved.read_text())
            name = info["repositoryName"]
            if name not in self.backend.repositories:
                self.backend.create_repository(name, info.get("repositoryDescription", ""))
                self.backend.repositories[name].repository_metadata["repositoryId"] = info["repositoryId"]
                branch = self._default_branch_on_disk(name)
                if branch:
                    self.backend.repositories[name].repository_metadata["defaultBranch"] = branch
            self._install_hook(name)

    def _install_hook(self, repository_name: str) -> None:
        if self.aws._server is None:
            return  # attach() installs it once the port is known
        hook = self.git_dir(repository_name) / "hooks" / "post-receive"
        hook.parent.mkdir(exist_ok=True)
        url = f"{self.aws.endpoint_url}/_localcloud/{HOOK_ROUTE}"
        hook.write_text(_HOOK.format(python=sys.executable, name=repository_name, url=url))
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def _metadata(self, repository_name: str) -> dict[str, Any]:
        repository = self.backend.repositories.get(repository_name)
        if repository is None or not self.git_dir(repository_name).exists():
            raise AwsError("RepositoryDoesNotExistException", f"{repository_name} does not exist")
        return repository.repository_metadata

    def _default_branch_on_disk(self, repository_name: str) -> str | None:
        head = self._git(
            self.git_dir(repository_name), "symbolic-ref", "--quiet", "HEAD", check=False
        ).strip()
        if head and self._rev(repository_name, head):
            return head.removeprefix("refs/heads/")
        return None

    # git plumbing --------------------------------------------------------------------------------
    @staticmethod
    def _git(git_dir: Path | None, *args: str, check: bool = True, binary: bool = False) -> Any:
        command = ["git"] + ([f"--git-dir={git_dir}"] if git_dir is not None else []) + list(args)
        result = subprocess.run(command, capture_output=True, check=False)
        if check and result.returncode != 0:
            raise AwsError("InternalFailure", result.stderr.decode("utf-8", "replace").strip(), 500)
        return result.stdout if binary else result.stdout.decode("utf-8", "replace")

    def _rev(self, repository_name: str, spec: str) -> str | None:
        out = self._git(
            self.git_dir(repository_name),
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            spec,
            check=False,
        )
        return out.strip() or None

    def _object_type(self, repository_name: str, object_id: str) -> str | None:
        out = self._git(self.git_dir(repository_name), "cat-file", "-t", object_id, check=False)
        return out.strip() or None

    def resolve_commit(self, repository_name: str, specifier: str | None) -> str:
        """A commit id from a branch name, tag, or commit id; the default branch's head when None."""
        metadata = self._metadata(repository_name)
        if not specifier:
            specifier = metadata.get("defaultBranch")
            if not specifier:
                raise AwsError(
                    "CommitDoesNotExistException",
                    f"The repository {repository_name} does not contain any commits.",
                )
        candidates = [f"refs/heads/{specifier}^{{commit}}", f"refs/tags/{specifier}^{{commit}}"]
        if _HEX.match(specifier):
            candidates.append(f"{specifier}^{{commit}}")
        for candidate in candidates:
            commit = self._rev(repository_name, candidate)
            if commit:
                return commit
        raise AwsError(
            "CommitDoesNotExistException",
            f"Could not find a commit for the commit specifier {specifier} in {repository_name}.",
        )

    def _ls_tree(self, repository_name: str, treeish: str) -> list[tuple[str, str, str, str]]:
        out = self._git(self.git_dir(repository_name), "ls-tree", "-z", treeish)
        entries = []
        for record in out.split("\0"):
            if record:
                meta, path = record.split("\t", 1)
                mode, kind, object_id = meta.split()
                entries.append((mode, kind, object_id, path))
        return entries

    # push → event --------------------------------------------------------------------------------
    def _on_push(self, payload: dict[str, Any]) -> dict[str, Any]:
        name = payload["repositoryName"]
        metadata = self._metadata(name)
        events = []
        for update in payload.get("updates", []):
            old, new, ref = update["oldCommitId"], update["newCommitId"], update["ref"]
            if ref.startswith("refs/heads/"):
                reference_type, reference_name = "branch", ref.removeprefix("refs/heads/")
            elif ref.startswith("refs/tags/"):
                reference_type, reference_name = "tag", ref.removeprefix("refs/tags/")
            else:
                continue
            detail: dict[str, Any] = {
                "callerUserArn": f"arn:aws:iam::{self.aws.account_id}:root",
                "referenceFullName": ref,
                "referenceName": reference_name,
                "referenceType": reference_type,
                "repositoryId": metadata["repositoryId"],
                "repositoryName": name,
            }
            if old == ZERO:
                detail.update(event="referenceCreated", commitId=new)
            elif new == ZERO:
                detail.update(event="referenceDeleted", oldCommitId=old)
            else:
                detail.update(event="referenceUpdated", commitId=new, oldCommitId=old)
            if reference_type == "branch" and new != ZERO and not metadata.get("defaultBranch"):
                # as CodeCommit does, the first branch pushed becomes the default branch
                metadata["defaultBranch"] = reference_name
                self._git(self.git_dir(name), "symbolic-ref", "HEAD", ref)
            event = self.aws.emit_event(
                "aws.codecommit", "CodeCommit Repository State Change", detail, [metadata["Arn"]]
            )
            events.append(event["id"])
        return {"eventIds": events}

    # API -----------------------------------------------------------------------------------------
    def _create_repository(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        metadata = self.create_repository(params["repositoryName"], params.get("repositoryDescription", ""))
        return {"repositoryMetadata": metadata}

    def _delete_repository(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["repositoryName"]
        repository = self.backend.repositories.get(name)
        if repository is None:
            return {}  # CodeCommit answers a delete of a missing repository with no id
        repository_id = repository.repository_metadata["repositoryId"]
        self.backend.delete_repository(name)
        shutil.rmtree(self.git_dir(name), ignore_errors=True)
        return {"repositoryId": repository_id}

    def _get_branch(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name, branch = params.get("repositoryName"), params.get("branchName")
        if not name:
            raise AwsError("RepositoryNameRequiredException", "A repository name is required.")
        if not branch:
            raise AwsError("BranchNameRequiredException", "A branch name is required.")
        self._metadata(name)
        commit = self._rev(name, f"refs/heads/{branch}^{{commit}}")
        if commit is None:
            raise AwsError("BranchDoesNotExistException", f"Could not find branch {branch}")
        return {"branch": {"branchName": branch, "commitId": commit}}

    def _list_branches(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["repositoryName"]
        self._metadata(name)
        out = self._git(self.git_dir(name), "for-each-ref", "--format=%(refname:strip=2)", "refs/heads/")
        return {"branches": sorted(line for line in out.splitlines() if line)}

    def _get_commit(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name, commit_id = params["repositoryName"], params.get("commitId", "")
        self._metadata(name)
        if not _HEX.match(commit_id):
            raise AwsError("InvalidCommitIdException", f"The commit ID {commit_id} is not valid.")
        if self._object_type(name, commit_id) != "commit":
            raise AwsError("CommitIdDoesNotExistException", f"Could not find commit {commit_id}")
        raw = self._git(self.git_dir(name), "cat-file", "commit", commit_id)
        header, _sep, message = raw.partition("\n\n")
        commit: dict[str, Any] = {
            "commitId": self._rev(name, commit_id),
            "parents": [],
            "message": message,
            "additionalData": "",
        }
        for line in header.splitlines():
            key, _sep, value = line.partition(" ")
            if key == "tree":
                commit["treeId"] = value
            elif key == "parent":
                commit["parents"].append(value)
            elif key in ("author", "committer"):
                match = re.match(r"^(.*) <(.*)> (\d+ [+-]\d{4})$", value)
                if match:
                    commit[key] = {"name": match.group(1), "email": match.group(2), "date": match.group(3)}
        return {"commit": commit}

    def _get_differences(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["repositoryName"]
        if not params.get("afterCommitSpecifier"):
            raise AwsError("CommitRequiredException", "A commit specifier is required.")
        after = self.resolve_commit(name, params["afterCommitSpecifier"])
        before = (
            self.resolve_commit(name, params["beforeCommitSpecifier"])
            if params.get("beforeCommitSpecifier")
            else EMPTY_TREE
        )
        out = self._git(
            self.git_dir(name), "diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", before, after
        )
        fields = out.split("\0")
        differences = []
        before_path = (params.get("beforePath") or "").strip("/")
        after_path = (params.get("afterPath") or "").strip("/")
        index = 0
        while index + 1 < len(fields) and fields[index].startswith(":"):
            old_mode, new_mode, old_blob, new_blob, change = fields[index][1:].split()
            path = fields[index + 1]
            index += 2
            if (before_path or after_path) and not (_within(path, before_path) or _within(path, after_path)):
                continue
            difference: dict[str, Any] = {"changeType": change[0]}
            if change[0] != "A":
                difference["beforeBlob"] = {"blobId": old_blob, "path": path, "mode": old_mode}
            if change[0] != "D":
                difference["afterBlob"] = {"blobId": new_blob, "path": path, "mode": new_mode}
            differences.append(difference)
        start = int(params["NextToken"]) if params.get("NextToken") else 0
        size = int(params.get("MaxResults") or 100)
        page: dict[str, Any] = {"differences": differences[start : start + size]}
        if start + size < len(differences):
            page["NextToken"] = str(start + size)
        return page

    def _get_folder(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["repositoryName"]
        commit = self.resolve_commit(name, params.get("commitSpecifier"))
        folder = (params.get("folderPath") or "").strip("/")
        tree = self._rev(name, f"{commit}:{folder}" if folder else f"{commit}^{{tree}}")
        if tree is None or self._object_type(name, tree) != "tree":
            raise AwsError(
                "FolderDoesNotExistException",
                f"The folder {params.get('folderPath')} does not exist in commit {commit}.",
            )
        document: dict[str, Any] = {
            "commitId": commit,
            "folderPath": folder,
            "treeId": tree,
            "subFolders": [],
            "files": [],
            "symbolicLinks": [],
            "subModules": [],
        }
        for mode, kind, object_id, entry in self._ls_tree(name, tree):
            absolute = f"{folder}/{entry}" if folder else entry
            if kind == "tree":
                document["subFolders"].append(
                    {"treeId": object_id, "absolutePath": absolute, "relativePath": entry}
                )
            elif kind == "commit":
                document["subModules"].append(
                    {"commitId": object_id, "absolutePath": absolute, "relativePath": entry}
                )
            elif mode == "120000":
                document["symbolicLinks"].append(
                    {
                        "blobId": object_id,
                        "absolutePath": absolute,
                        "relativePath": entry,
                        "fileMode": "SYMLINK",
                    }
                )
            else:
                document["files"].append(
                    {
                        "blobId": object_id,
                        "absolutePath": absolute,
                        "relativePath": entry,
                        "fileMode": _FILE_MODES.get(mode, "NORMAL"),
                    }
                )
        return document

    def _get_file(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["repositoryName"]
        commit = self.resolve_commit(name, params.get("commitSpecifier"))
        path = (params.get("filePath") or "").strip("/")
        parent, _sep, leaf = path.rpartition("/")
        entries = (
            self._ls_tree(name, f"{commit}:{parent}" if parent else f"{commit}^{{tree}}")
            if (not parent or self._rev(name, f"{commit}:{parent}"))
            else []
        )
        match = next((e for e in entries if e[3] == leaf and e[1] == "blob"), None)
        if not path or match is None:
            raise AwsError(
                "FileDoesNotExistException",
                f"The file {params.get('filePath')} does not exist in commit {commit}.",
            )
        mode, blob = match[0], match[2]
        content = self._git(self.git_dir(name), "cat-file", "blob", blob, binary=True)
        if len(content) > MAX_FILE_BYTES:
            raise AwsError("FileTooLargeException", f"The file {path} is larger than 6 MB; use GetBlob.")
        return {
            "commitId": commit,
            "blobId": blob,
            "filePath": path,
            "fileMode": _FILE_MODES.get(mode, "NORMAL"),
            "fileSize": len(content),
            "fileContent": base64.b64encode(content).decode("ascii"),
        }

    def _get_blob(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name, blob = params["repositoryName"], params.get("blobId", "")
        self._metadata(name)
        if not re.fullmatch(r"[0-9a-f]{40}", blob):
            raise AwsError("InvalidBlobIdException", f"The blob ID {blob} is not valid.")
        if self._object_type(name, blob) != "blob":
            raise AwsError("BlobIdDoesNotExistException", f"Could not find blob {blob}")
        content = self._git(self.git_dir(name), "cat-file", "blob", blob, binary=True)
        return {"content": base64.b64encode(content).decode("ascii")}


def _within(path: str, folder: str) -> bool:
    return bool(folder) and (path == folder or path.startswith(folder + "/"))

"""CodeCommit on the embedded AWS: a real git push emits the AWS event, and the read APIs read git."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.localcloud.conftest import EVENTBRIDGE_ENVELOPE

PUSH = "CodeCommit Repository State Change"


@pytest.fixture
def repo(client, embedded_aws, unique, working_copy):
    """A new repository and a working copy whose origin is it."""
    name = unique("repo")
    metadata = client("codecommit").create_repository(repositoryName=name)["repositoryMetadata"]
    copy = working_copy(embedded_aws.codecommit.clone_url_for(name))
    return name, metadata, copy


def test_first_push_emits_reference_created_with_the_pushed_commit(repo, events):
    # GIVEN a new repository and a commit in a working copy
    name, metadata, copy = repo
    copy.write("training_code/train.py", "print('train')\n")
    commit = copy.commit("first")

    # WHEN the user pushes the branch with plain git
    copy.git("push", "-q", "origin", "main")

    # THEN EventBridge receives the CodeCommit event AWS sends for a new branch
    [event] = events.of(PUSH, repositoryName=name)
    assert event["source"] == "aws.codecommit"
    assert event["resources"] == [metadata["Arn"]]
    assert event["account"] == "123456789012" and event["region"] == "us-east-1"
    assert event["detail"]["event"] == "referenceCreated"
    assert event["detail"]["commitId"] == commit
    assert "oldCommitId" not in event["detail"]
    assert event["detail"]["referenceName"] == "main"
    assert event["detail"]["referenceFullName"] == "refs/heads/main"
    assert event["detail"]["referenceType"] == "branch"
    assert event["detail"]["repositoryId"] == metadata["repositoryId"]
    assert set(event) == EVENTBRIDGE_ENVELOPE


def test_second_push_emits_reference_updated_with_old_and_new_commit(repo, events):
    # GIVEN a branch already pushed
    name, _, copy = repo
    copy.write("a.txt", "1\n")
    first = copy.commit("one")
    copy.git("push", "-q", "origin", "main")
    copy.write("a.txt", "2\n")
    second = copy.commit("two")

    # WHEN the next commit is pushed
    copy.git("push", "-q", "origin", "main")

    # THEN the event names both commits
    [event] = events.of(PUSH, repositoryName=name, event="referenceUpdated")
    assert event["detail"]["commitId"] == second
    assert event["detail"]["oldCommitId"] == first


def test_deleting_a_branch_emits_reference_deleted(repo, events, client):
    # GIVEN two branches pushed
    name, _, copy = repo
    copy.write("a.txt", "1\n")
    head = copy.commit("one")
    copy.git("push", "-q", "origin", "main", "main:feature")

    # WHEN the feature branch is deleted on the remote
    copy.git("push", "-q", "origin", "--delete", "feature")

    # THEN a referenceDeleted event names the commit the branch pointed at, and the branch is gone
    [event] = events.of(PUSH, repositoryName=name, event="referenceDeleted")
    assert event["detail"]["oldCommitId"] == head
    assert event["detail"]["referenceName"] == "feature"
    assert client("codecommit").list_branches(repositoryName=name)["branches"] == ["main"]


def test_first_branch_pushed_becomes_the_default_branch(repo, client):
    name, _, copy = repo
    copy.write("a.txt", "1\n")
    copy.commit("one")
    copy.git("push", "-q", "origin", "main")

    repository = client("codecommit").get_repository(repositoryName=name)["repositoryMetadata"]

    assert repository["defaultBranch"] == "main"


@pytest.fixture
def history(repo):
    """Two pushed commits: the second modifies, adds and deletes files."""
    name, _, copy = repo
    copy.write("training_code/train.py", "print('v1')\n")
    copy.write("training_code/run.sh", "#!/bin/sh\necho run\n", executable=True)
    copy.write("README.md", "readme\n")
    copy.write("docs/old.md", "old\n")
    first = copy.commit("first")
    copy.write("training_code/train.py", "print('v2')\n")
    copy.write("training_code/lib/util.py", "X = 1\n")
    (copy.path / "docs/old.md").unlink()
    second = copy.commit("second")
    copy.git("push", "-q", "origin", "main")
    return name, copy, first, second


def test_get_differences_lists_changes_between_commits_as_git_does(history, client):
    name, copy, first, second = history

    differences = client("codecommit").get_differences(
        repositoryName=name, beforeCommitSpecifier=first, afterCommitSpecifier=second
    )["differences"]

    by_path = {(d.get("afterBlob") or d["beforeBlob"])["path"]: d for d in differences}
    assert {p: d["changeType"] for p, d in by_path.items()} == {
        "training_code/train.py": "M",
        "training_code/lib/util.py": "A",
        "docs/old.md": "D",
    }
    modified = by_path["training_code/train.py"]
    assert modified["beforeBlob"]["blobId"] == copy.git("rev-parse", f"{first}:training_code/train.py")
    assert modified["afterBlob"]["blobId"] == copy.git("rev-parse", f"{second}:training_code/train.py")
    assert modified["afterBlob"]["mode"] == "100644"
    assert "beforeBlob" not in by_path["training_code/lib/util.py"]
    assert "afterBlob" not in by_path["docs/old.md"]


def test_get_differences_without_before_commit_lists_every_file_as_added(history, client):
    name, _, first, _ = history

    differences = client("codecommit").get_differences(repositoryName=name, afterCommitSpecifier=first)[
        "differences"
    ]

    assert sorted(d["afterBlob"]["path"] for d in differences) == [
        "README.md",
        "docs/old.md",
        "training_code/run.sh",
        "training_code/train.py",
    ]
    assert {d["changeType"] for d in differences} == {"A"}


def test_get_differences_filters_by_path_and_paginates(history, client):
    name, _, first, _ = history
    codecommit = client("codecommit")

    page = codecommit.get_differences(
        repositoryName=name,
        beforeCommitSpecifier=first,
        afterCommitSpecifier="main",
        afterPath="training_code",
        MaxResults=1,
    )
    rest = codecommit.get_differences(
        repositoryName=name,
        beforeCommitSpecifier=first,
        afterCommitSpecifier="main",
        afterPath="training_code",
        NextToken=page["NextToken"],
    )

    paths = [d["afterBlob"]["path"] for d in page["differences"] + rest["differences"]]
    assert sorted(paths) == ["training_code/lib/util.py", "training_code/train.py"]
    assert "NextToken" not in rest


def test_get_folder_lists_files_and_subfolders_of_the_commit(history, client):
    name, copy, _, second = history

    folder = client("codecommit").get_folder(
        repositoryName=name, commitSpecifier="main", folderPath="/training_code"
    )

    assert folder["commitId"] == second
    assert folder["treeId"] == copy.git("rev-parse", f"{second}:training_code")
    assert {f["relativePath"]: f["fileMode"] for f in folder["files"]} == {
        "train.py": "NORMAL",
        "run.sh": "EXECUTABLE",
    }
    train = next(f for f in folder["files"] if f["relativePath"] == "train.py")
    assert train["absolutePath"] == "training_code/train.py"
    assert train["blobId"] == copy.git("rev-parse", f"{second}:training_code/train.py")
    assert [(s["absolutePath"], s["relativePath"]) for s in folder["subFolders"]] == [
        ("training_code/lib", "lib")
    ]


def test_get_folder_defaults_to_the_default_branch_head(history, client):
    name, _, _, second = history

    folder = client("codecommit").get_folder(repositoryName=name, folderPath="/")

    assert folder["commitId"] == second
    assert sorted(f["relativePath"] for f in folder["files"]) == ["README.md"]
    assert sorted(s["relativePath"] for s in folder["subFolders"]) == ["training_code"]


def test_get_file_and_get_blob_return_the_bytes_in_git(history, client):
    name, _, first, _ = history
    codecommit = client("codecommit")

    file = codecommit.get_file(repositoryName=name, commitSpecifier=first, filePath="training_code/train.py")
    blob = codecommit.get_blob(repositoryName=name, blobId=file["blobId"])

    assert file["fileContent"] == b"print('v1')\n"
    assert file["fileSize"] == len(b"print('v1')\n")
    assert file["commitId"] == first and file["fileMode"] == "NORMAL"
    assert blob["content"] == b"print('v1')\n"


def test_get_branch_and_get_commit_read_the_pushed_history(history, client):
    name, copy, first, second = history
    codecommit = client("codecommit")

    branch = codecommit.get_branch(repositoryName=name, branchName="main")["branch"]
    commit = codecommit.get_commit(repositoryName=name, commitId=second)["commit"]

    assert branch == {"branchName": "main", "commitId": second}
    assert commit["parents"] == [first]
    assert commit["treeId"] == copy.git("rev-parse", f"{second}^{{tree}}")
    assert commit["message"].strip() == "second"
    assert commit["author"]["email"] == "dev@example.com"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c, n: c.get_file(repositoryName=n, filePath="missing.txt"), "FileDoesNotExistException"),
        (lambda c, n: c.get_folder(repositoryName=n, folderPath="missing"), "FolderDoesNotExistException"),
        (lambda c, n: c.get_blob(repositoryName=n, blobId="0" * 40), "BlobIdDoesNotExistException"),
        (lambda c, n: c.get_blob(repositoryName=n, blobId="not-a-blob"), "InvalidBlobIdException"),
        (lambda c, n: c.get_branch(repositoryName=n, branchName="nope"), "BranchDoesNotExistException"),
        (
            lambda c, n: c.get_differences(repositoryName=n, afterCommitSpecifier="nope"),
            "CommitDoesNotExistException",
        ),
        (lambda c, n: c.get_commit(repositoryName=n, commitId="1" * 40), "CommitIdDoesNotExistException"),
        (
            lambda c, n: c.get_folder(repositoryName=n + "-other", folderPath="/"),
            "RepositoryDoesNotExistException",
        ),
    ],
)
def test_missing_things_raise_the_codecommit_errors(history, client, call, code):
    name = history[0]

    with pytest.raises(ClientError) as raised:
        call(client("codecommit"), name)

    assert raised.value.response["Error"]["Code"] == code


def test_deleting_a_repository_removes_the_git_repository(client, embedded_aws, unique):
    name = unique("gone")
    client("codecommit").create_repository(repositoryName=name)
    repository_id = client("codecommit").delete_repository(repositoryName=name)["repositoryId"]

    assert repository_id
    assert not embedded_aws.codecommit.git_dir(name).exists()
    with pytest.raises(ClientError):
        client("codecommit").get_repository(repositoryName=name)

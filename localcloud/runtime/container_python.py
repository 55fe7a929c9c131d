"""`python`, `python3` and `pip` as a job's shell entrypoint finds them on its PATH (the container's own).

A processing job whose entrypoint is a shell script (the SDK's `FrameworkProcessor` uploads `runproc.sh`,
which unpacks `sourcedir.tar.gz`, may `pip install -r requirements.txt`, then runs `python <script>`) calls
these by name. The runner puts shims for them first on the job's PATH; each runs this module with the job's
container root:

- `python script.py …` runs the script as the fork-server path runs an entry script: `/opt/ml` in its string
  literals is the job's own tree (`worker.container_view`), so parallel jobs never share, or write to, a
  real /opt/ml;
- `pip uninstall …` changes nothing (the container's `pip uninstall --yes typing` guards an old image);
- `pip install -r requirements.txt` installs nothing into the local cloud's environment: it checks that
  every requirement is already satisfied there and fails the job, naming what is missing, if one is not;
- anything else is the interpreter itself.

    python -m localcloud.runtime.container_python CONTAINER_ROOT [python arguments ...]
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement


def unsatisfied(requirements_file: Path) -> list[str]:
    """The lines of a requirements file that this environment does not satisfy."""
    missing = []
    for raw in requirements_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            missing.append(f"{line} (not a requirement this shim can check)")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(f"{line} (not installed)")
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{line} (installed: {installed})")
    return missing


def pip(arguments: list[str]) -> int:
    if arguments[:1] == ["uninstall"]:
        print("local cloud: pip uninstall skipped (the job's environment is the local cloud's own)")
        return 0
    if arguments[:1] == ["install"] and "-r" in arguments:
        requirements = Path(arguments[arguments.index("-r") + 1])
        missing = unsatisfied(requirements)
        if missing:
            print(
                f"local cloud: {requirements} asks for packages this environment lacks; jobs here run in the "
                "local cloud's own environment and install nothing. Missing: " + "; ".join(missing),
                file=sys.stderr,
            )
            return 1
        print(f"local cloud: every requirement of {requirements} is already satisfied")
        return 0
    print(f"local cloud: `pip {' '.join(arguments)}` is not run in a local job", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    root, *arguments = argv
    if arguments[:2] == ["-m", "pip"]:
        return pip(arguments[2:])
    if arguments and not arguments[0].startswith("-") and os.path.isfile(arguments[0]):
        from localcloud.runtime.worker import run_script

        script = arguments[0]
        sys.argv = arguments
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        return run_script(script, root)
    os.execv(sys.executable, [sys.executable, *arguments])  # noqa: S606 - the job's own command
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

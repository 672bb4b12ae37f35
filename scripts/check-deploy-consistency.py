#!/usr/bin/env python3
"""Cross-file checks of the deployment kit that no single-file linter can make.

Run by scripts/validate-deploy.sh with the virtualenv's Python (it needs PyYAML). Each check
prints what is wrong and where; the exit status is 1 when any check fails.

- every Dockerfile builds on the Rust version that rust-toolchain.toml pins;
- env.prod.sample names every variable calories-app reads, and the ConfigMap and the Secret
  template together provide each one;
- each kustomization.yaml lists every manifest beside it, and only files that exist;
- every image reference carries an explicit tag other than "latest", or a digest;
- the .dockerignore leaves in what cargo needs to build the image (the workspace's manifests,
  lockfile, Rust sources and READMEs, and what the binary embeds: example-app/migrations and
  example-app/data).
"""

import argparse
import re
import sys
from pathlib import Path

import yaml

# The variables calories-app reads (its configuration contract; example-app/src).
APP_VARIABLES = [
    "APP_ENV",
    "BIND_ADDR",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_READ_URL",
    "DATABASE_READ_MAX_CONNECTIONS",
    "READ_YOUR_WRITES_SECONDS",
    "CACHE_URL",
    "CACHE_LOCAL_CAPACITY",
    "CACHE_LOCAL_TTL_SECONDS",
    "JWT_SECRET",
    "JWT_TTL_SECONDS",
    "REFRESH_TTL_SECONDS",
    "PHOTO_DIR",
    "RATE_LIMIT_PER_MINUTE",
    "RATE_LIMIT_ANON_PER_MINUTE",
    "RATE_LIMIT_AUTH_PER_MINUTE",
    "PASSWORD_HASH_CONCURRENCY",
    "TRUST_FORWARDED_FOR",
    "RUST_LOG",
]


def rust_versions(toolchain: Path, dockerfiles: list[Path]) -> list[str]:
    match = re.search(r'^channel\s*=\s*"([^"]+)"', toolchain.read_text(), re.MULTILINE)
    if not match:
        return [f"{toolchain}: no channel = \"...\" line"]
    pinned = match.group(1)
    problems = []
    for dockerfile in dockerfiles:
        froms = re.findall(r"^FROM\s+(?:docker\.io/(?:library/)?)?rust:(\S+)", dockerfile.read_text(),
                           re.MULTILINE | re.IGNORECASE)
        if not froms:
            problems.append(f"{dockerfile}: no FROM rust:<version> stage")
        for tag in froms:
            version = tag.split("-", 1)[0].split("@", 1)[0]
            if version != pinned:
                problems.append(f"{dockerfile}: FROM rust:{tag} but {toolchain} pins {pinned}")
    return problems


def env_file_keys(path: Path) -> set[str]:
    keys = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            keys.add(line.split("=", 1)[0].strip())
    return keys


def app_variables(env_sample: Path, configmap: Path, secret: Path) -> list[str]:
    problems = []
    missing = [name for name in APP_VARIABLES if name not in env_file_keys(env_sample)]
    if missing:
        problems.append(f"{env_sample}: missing {', '.join(missing)}")
    provided = set()
    for path, field in ((configmap, "data"), (secret, "stringData")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                provided |= set((doc.get(field) or {}).keys())
    missing = [name for name in APP_VARIABLES if name not in provided]
    if missing:
        problems.append(f"{configmap} and {secret} together lack {', '.join(missing)}")
    return problems


def kustomization_resources(kustomization: Path) -> list[str]:
    folder = kustomization.parent
    listed = (yaml.safe_load(kustomization.read_text()) or {}).get("resources") or []
    problems = [f"{kustomization}: resource {entry} does not exist"
                for entry in listed if not (folder / entry).exists()]
    # secrets.yaml is the git-ignored, filled-in secrets.yaml.example: applied by hand, on purpose.
    manifests = sorted(p.name for p in folder.iterdir()
                       if p.suffix in (".yaml", ".yml")
                       and p.name not in (kustomization.name, "secrets.yaml"))
    problems += [f"{kustomization}: {name} is beside it but not in resources, so never applied"
                 for name in manifests if name not in listed]
    return problems


def image_references(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from image_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from image_references(item)


def pinned_images(files: list[Path]) -> list[str]:
    problems = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            for image in image_references(doc):
                if "@sha256:" in image:
                    continue
                tag = image.rpartition("/")[2].partition(":")[2]
                if not tag or tag == "latest":
                    problems.append(f"{path}: image {image} has no version tag")
    return problems


def dockerignore_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over a relative path."""
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    # A pattern that names a folder excludes everything in it.
    return re.compile(out + "(?:/.*)?")


def workspace_members(manifest: Path) -> list[str]:
    match = re.search(r"^members\s*=\s*\[([^\]]*)\]", manifest.read_text(), re.MULTILINE)
    return re.findall(r'"([^"]+)"', match.group(1)) if match else []


def build_context(dockerignore: Path, workspace: Path, repo_files: Path) -> list[str]:
    patterns = [line.strip() for line in dockerignore.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    if any(p.startswith("!") for p in patterns):
        return [f"{dockerignore}: re-inclusions (!) are beyond this check; extend it first"]
    excluders = [(p, dockerignore_regex(p)) for p in patterns]
    members = workspace_members(workspace)
    if "example-app" not in members:
        # The app lands in the workspace with its own branch; require its folders from then on.
        members.append("example-app")
    needed = []
    for name in repo_files.read_text().splitlines():
        in_member = any(name.startswith(m + "/") for m in members)
        if (name in ("Cargo.toml", "Cargo.lock")
                or (in_member and name.endswith((".rs", ".toml", ".md")))
                or name.startswith(("example-app/migrations/", "example-app/data/"))):
            needed.append(name)
    problems = []
    for name in needed:
        for pattern, regex in excluders:
            if regex.fullmatch(name):
                problems.append(f"{dockerignore}: {pattern!r} leaves {name} out of the build context")
                break
    if not needed:
        problems.append(f"{repo_files}: no Cargo.toml among the repository's files")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toolchain", type=Path, required=True)
    parser.add_argument("--dockerfile", type=Path, action="append", required=True)
    parser.add_argument("--env-sample", type=Path, required=True)
    parser.add_argument("--configmap", type=Path, required=True)
    parser.add_argument("--secret", type=Path, required=True)
    parser.add_argument("--kustomization", type=Path, action="append", required=True)
    parser.add_argument("--images", type=Path, nargs="+", required=True)
    parser.add_argument("--dockerignore", type=Path, required=True)
    parser.add_argument("--workspace", type=Path, required=True, help="the root Cargo.toml")
    parser.add_argument("--repo-files", type=Path, required=True,
                        help="a file listing the repository's files, one path a line")
    args = parser.parse_args()

    problems = rust_versions(args.toolchain, args.dockerfile)
    problems += app_variables(args.env_sample, args.configmap, args.secret)
    for kustomization in args.kustomization:
        problems += kustomization_resources(kustomization)
    problems += pinned_images(args.images)
    problems += build_context(args.dockerignore, args.workspace, args.repo_files)
    for problem in problems:
        print(f"ERROR {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

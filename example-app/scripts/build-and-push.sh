#!/usr/bin/env bash
# Builds the calories-app image from the workspace root and pushes it as
# $DOCKER_REGISTRY/calories-app:VERSION. Needs a Docker engine with push rights to the registry.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: DOCKER_REGISTRY=registry.example.com/team example-app/scripts/build-and-push.sh VERSION

Builds example-app/Dockerfile with the workspace root as context, tags the image
$DOCKER_REGISTRY/calories-app:VERSION and pushes it.

  VERSION          an immutable tag such as 1.4.0 or 1.4.0-rc.1; "latest" is refused,
                   since Kubernetes and Compose could not tell two releases apart
  DOCKER_REGISTRY  registry and path to push to (required), e.g. ghcr.io/acme
  DOCKERFILE       optional: example-app/Dockerfile.scratch for the static FROM scratch image
USAGE
}

if [ "$#" -ne 1 ]; then
    usage >&2
    exit 2
fi
case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
esac

version="$1"
if [ "$version" = "latest" ]; then
    echo "error: refusing to push the tag \"latest\": give a version such as 1.4.0" >&2
    exit 2
fi
# Docker's tag grammar: 1 to 128 of [A-Za-z0-9_.-], not starting with "." or "-".
if ! printf '%s' "$version" | grep -Eq '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'; then
    echo "error: \"$version\" is not a valid image tag (letters, digits, _ . -; at most 128)" >&2
    exit 2
fi
if [ -z "${DOCKER_REGISTRY:-}" ]; then
    echo "error: DOCKER_REGISTRY is not set; e.g. DOCKER_REGISTRY=ghcr.io/acme $0 $version" >&2
    exit 2
fi

cd "$(dirname "$0")/../.."
dockerfile="${DOCKERFILE:-example-app/Dockerfile}"
image="${DOCKER_REGISTRY%/}/calories-app:${version}"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    echo "warning: the work tree has uncommitted changes; the image will not match $revision" >&2
fi

echo "==> building $image from $dockerfile"
docker build \
    --file "$dockerfile" \
    --tag "$image" \
    --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" \
    .

echo "==> pushing $image"
docker push "$image"

# The digest is what a deployment should pin: tags can be moved, digests cannot.
digest="$(docker image inspect --format '{{join .RepoDigests "\n"}}' "$image" \
    | grep -F "${DOCKER_REGISTRY%/}/calories-app@" | head -n 1 || true)"
echo "pushed $image"
if [ -n "$digest" ]; then
    echo "digest $digest"
fi

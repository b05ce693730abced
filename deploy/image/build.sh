#!/usr/bin/env bash
# Build the analysis service's image, localhost/canarypilot:<version> (`make image`).
#
# No image registry is reachable, so the base is made here from Debian's own packages:
# `debootstrap --variant=minbase` of the suite, from the mirror apt uses, with python3,
# trimmed (docs, man pages, locales, apt lists, caches), packed as a tarball under
# ~/.cache/canarypilot/image-base/<suite>-<date>.tar and imported into containers
# storage once. Then buildah builds the Containerfile with --isolation chroot (no
# user namespaces or cgroups needed). The version is pyproject.toml's.
#
# Usage: deploy/image/build.sh            prints the image name on its last line
# Env:   SUITE (bookworm), MIRROR (apt's), BASE_DATE (today, UTC), IMAGE_NAME
# Exit:  0 built; 1 a step failed (its command and output are on stderr); 2 a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in buildah podman debootstrap python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: $tool is not installed" >&2; exit 2; }
done

SUITE=${SUITE:-bookworm}
BASE_DATE=${BASE_DATE:-$(date -u +%Y%m%d)}
VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
IMAGE_NAME=${IMAGE_NAME:-localhost/canarypilot:$VERSION}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/canarypilot/image-base
BASE_TAR=$CACHE/$SUITE-$BASE_DATE.tar
BASE_IMAGE=localhost/canarypilot-base:$SUITE-$BASE_DATE

mirror() {  # the first Debian URI apt is configured with (deb822 or one-line sources)
  local uri
  uri=$(grep -hE '^\s*(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -E 'debian/?(\s|$)' | grep -v security | head -n1 \
    | sed -E 's/^\s*URIs:\s*//; s/^\s*deb\s+(\[[^]]*\]\s+)?//; s/\s.*$//')
  echo "${uri:-http://deb.debian.org/debian}"
}

make_base() {
  local root=$CACHE/$SUITE-$BASE_DATE.root
  rm -rf "$root"
  echo "build.sh: debootstrap --variant=minbase $SUITE from ${MIRROR:-$(mirror)}" >&2
  debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$root" "${MIRROR:-$(mirror)}" >&2
  # What a service container never reads. python3-venv stays: the build stage uses it.
  rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,linda,bug,common-licenses}/* \
    "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
    "$root"/var/log/* "$root"/usr/lib/python3.11/{test,idlelib,tkinter,turtledemo,lib2to3/tests} \
    "$root"/usr/share/zoneinfo/right
  find "$root"/usr/lib/python3* -depth -name __pycache__ -type d -exec rm -rf {} +
  tar --numeric-owner -C "$root" -cf "$BASE_TAR.partial" .
  mv "$BASE_TAR.partial" "$BASE_TAR"
  rm -rf "$root"
  # Older days' tarballs of this suite are not used again (the imported images stay).
  find "$CACHE" -maxdepth 1 -name "$SUITE-*.tar" ! -name "$SUITE-$BASE_DATE.tar" -delete
}

mkdir -p "$CACHE"
(
  flock 9  # concurrent builds make the base once
  [ -s "$BASE_TAR" ] || make_base
  podman image exists "$BASE_IMAGE" || podman import --quiet "$BASE_TAR" "$BASE_IMAGE" >/dev/null
) 9>"$CACHE/lock"

# The host's CA bundle, for a machine that reaches PyPI through a TLS-inspecting proxy.
ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
ca_args=()
[ -r "$ca" ] && ca_args=(--volume "$ca:/run/host-ca.crt:ro" --build-arg CA_BUNDLE=/run/host-ca.crt)

(
  flock 8  # one build at a time: a second one (a parallel test worker) reuses the first's layers
  buildah build --isolation chroot --network host --layers --quiet "${ca_args[@]}" \
    --build-arg BASE="$BASE_IMAGE" --build-arg VERSION="$VERSION" \
    -f Containerfile -t "$IMAGE_NAME" . >&2
) 8>"$CACHE/build.lock"
echo "$IMAGE_NAME"

#!/bin/sh
# The base image of deploy/Dockerfile, made without a registry: a minimal Debian bookworm
# root filesystem from debootstrap (Debian's package; run as root), imported into the Docker
# engine of DOCKER_HOST as $1 (default lwm-debian:bookworm). Skips the work when the image exists.
set -eu
IMAGE="${1:-lwm-debian:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE exists"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed: apt-get install debootstrap" >&2; exit 1; }
ROOTFS="$(mktemp -d /var/tmp/lwm-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
# python3 of bookworm is 3.11, the market's Python; python3-venv gives the image its own venv.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" "$MIRROR"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import --change 'CMD ["/bin/bash"]' - "$IMAGE"

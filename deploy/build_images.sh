#!/bin/sh
# Builds deploy/Dockerfile's targets (default: all) with the Docker engine of DOCKER_HOST, from a
# base made here (deploy/debian_base.sh): no registry is needed but the package indexes.
# Images are tagged $LWM_IMAGE_REPO/lwm-<target>:$LWM_IMAGE_TAG, the names deploy/k8s uses.
set -eu
cd "$(dirname "$0")/.."
REPO="${LWM_IMAGE_REPO:-ghcr.io/learnware-market}"
TAG="${LWM_IMAGE_TAG:-0.1.0}"
TARGETS="${*:-organizer gateway searcher checker reuse market}"
deploy/debian_base.sh lwm-debian:bookworm
# The CAs this machine added to its trust store (a TLS-inspecting proxy's, a private index's).
rm -rf build/ca-certificates && mkdir -p build/ca-certificates
find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} build/ca-certificates/ \; 2>/dev/null || true
# A torch CPU wheel in one of pip's find-links folders saves its download; its dependencies
# are ordinary packages, so then PyPI serves them and the PyTorch index is not needed.
rm -rf build/wheelhouse && mkdir -p build/wheelhouse
for dir in ${PIP_FIND_LINKS:-}; do
    find "$dir" -maxdepth 1 -name 'torch-2.13.0+cpu-cp311-*.whl' -exec cp {} build/wheelhouse/ \; 2>/dev/null || true
done
if [ -n "$(ls build/wheelhouse)" ]; then
    TORCH_INDEX="${TORCH_INDEX:-https://pypi.org/simple}"
else
    TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
fi
for target in $TARGETS; do
    start=$(date +%s)
    docker build --network host --build-arg TORCH_INDEX="$TORCH_INDEX" -f deploy/Dockerfile --target "$target" -t "$REPO/lwm-$target:$TAG" .
    echo "$REPO/lwm-$target:$TAG built in $(( $(date +%s) - start )) s, $(docker image inspect --format '{{.Size}}' "$REPO/lwm-$target:$TAG") bytes"
done

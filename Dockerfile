# syntax=docker/dockerfile:1
#
# The production image: Chime's five commands (coordinator, worker, gateway,
# chime, chimectl) in /usr/local/bin, on distroless static: no shell, no
# package manager, a non-root user (65532), CA certificates and the IANA
# zone database (/usr/share/zoneinfo). The binaries are static
# (CGO_ENABLED=0), built with -trimpath (no build paths in them) and embed
# the zone database themselves (time/tzdata), so they need nothing from the
# image but CA certificates for TLS. The benchmark and load commands
# (cmd/bench, cmd/bulkload, cmd/wsload) are not in it: run them with go run.
#
#   docker build \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t ghcr.io/chime-dev/chime:dev .
#
# BuildKit (the default builder) keeps the module and build caches between
# builds (the --mount=type=cache lines); they are not part of the image.
#
# Both base images are pinned by digest, so that building the same commit
# again gets the same bases; the tag beside each digest says what it
# tracks. The pins are the multi-platform index digests of
# golang:1.26-bookworm (Go 1.26.5, July 2026) and of
# gcr.io/distroless/static-debian12:nonroot (August 2026). To move a pin,
# for a Go patch release or a rebuilt distroless, read the tag's current
# digest and replace the one here:
#
#   docker buildx imagetools inspect golang:1.26-bookworm
#   docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot
#
# (or crane digest IMAGE). deployments/k8s/image_test.go runs this file's
# build command, checks that it makes exactly the production commands and
# that each is static, and that both bases are pinned.

FROM golang:1.26-bookworm@sha256:551752d3ad9de9923190bf5280500617ed8fee287ffb4b0220e770ef89346258 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/ \
    ./cmd/coordinator ./cmd/worker ./cmd/gateway ./cmd/chime ./cmd/chimectl

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
# VERSION and REVISION name the build (see the docker build line above).
# The repository has no LICENSE file yet: LICENSES stays NOASSERTION (SPDX
# for "not stated") until one is chosen.
ARG VERSION=dev
ARG REVISION=unknown
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="Chime" \
      org.opencontainers.image.description="Scheduled reminders for app users: coordinator, worker, WebSocket gateway and the chime and chimectl tools" \
      org.opencontainers.image.source="https://github.com/chime-dev/chime" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/coordinator"]

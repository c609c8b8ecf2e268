# syntax=docker/dockerfile:1
#
# One image with every Chime binary (coordinator, worker, chime, and any
# other command under cmd/) in /usr/local/bin, on distroless static: no
# shell, no package manager, a non-root user (65532), CA certificates and
# the IANA zone database (/usr/share/zoneinfo). The binaries are static
# (CGO_ENABLED=0) and embed the zone database themselves (time/tzdata), so
# they need nothing from the image but CA certificates for TLS.
#
#   docker build -t ghcr.io/chime-dev/chime:dev .
#
# deployments/k8s/image_test.go runs this file's build command and checks
# that every binary it makes is static.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -ldflags="-s -w" -o /out/ ./cmd/...

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/coordinator"]

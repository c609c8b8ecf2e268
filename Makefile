# Chime. Two commands work on a fresh machine:
#   make run   the end-to-end demo on embedded stores (no servers needed)
#   make test  unit and integration tests against real Redis and MariaDB,
#              started by scripts/testenv.sh when none is reachable
GO ?= go
TESTFLAGS ?= -count=1 -timeout 20m

.PHONY: run test unit build vet

run:
	$(GO) run ./cmd/chime demo

test: vet
	scripts/testenv.sh $(GO) test $(TESTFLAGS) ./...

# Unit tests only: integration tests skip without REDIS_URL and MYSQL_DSN.
unit:
	env -u REDIS_URL -u MYSQL_DSN $(GO) test $(TESTFLAGS) ./...

build:
	$(GO) build -o bin/ ./cmd/...

vet:
	$(GO) vet ./...

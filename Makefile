# Chime. Two commands work on a fresh machine:
#   make run   the end-to-end demo on embedded stores (no servers needed)
#   make test  unit and integration tests against real Redis and MariaDB,
#              started by scripts/testenv.sh when none is reachable
GO ?= go
TESTFLAGS ?= -count=1 -timeout 20m

.PHONY: run test unit build image vet lint bench bench-quick wsload wsload-60k wsload-mixed console-shots

# The demo, then its console left open (URL and sign-in printed) until Ctrl-C.
# DEMO_FLAGS adds flags of `chime demo`, e.g. make run DEMO_FLAGS=-prayer.
DEMO_FLAGS ?=
run:
	$(GO) run ./cmd/chime demo -console $(DEMO_FLAGS)

# Screenshots of the console's pages, taken by its browser test, for
# docs/console.md.
console-shots:
	CHIME_CONSOLE_SHOTS=$(CURDIR)/docs/console scripts/testenv.sh $(GO) test -count=1 -run TestConsoleInBrowser ./console/

test: vet
	scripts/testenv.sh $(GO) test $(TESTFLAGS) ./...

# Unit tests only: integration tests skip without REDIS_URL and MYSQL_DSN.
unit:
	env -u REDIS_URL -u MYSQL_DSN $(GO) test $(TESTFLAGS) ./...

build:
	$(GO) build -o bin/ ./cmd/...

# The container image (needs a Docker engine); see Dockerfile.
image:
	docker build -t ghcr.io/chime-dev/chime:dev .

vet:
	$(GO) vet ./...

# golangci-lint with the small set of .golangci.yml (built through the module
# proxy on first use).
GOLANGCI_LINT_VERSION ?= v2.15.0
lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) run ./...

# Chime against one asynq task per user, same Redis and MariaDB, one run.
# bench writes the table and chart that docs/benchmarks.md shows.
bench:
	scripts/testenv.sh $(GO) run ./cmd/bench -users 1000000 -scaling -uuid \
		-md docs/bench-result.md -chart docs/bench-deliveries.png

bench-quick:
	scripts/testenv.sh $(GO) run ./cmd/bench -quick

# 10,000 WebSocket clients on one gateway process, a reminder fired to all.
wsload:
	scripts/testenv.sh $(GO) run ./cmd/wsload -clients 10000

# 60,000 clients from four client processes over four gateway processes
# (one process holds at most about 19,000 open files here).
wsload-60k:
	scripts/testenv.sh $(GO) run ./cmd/wsload -clients 60000 -gateways 4 -client-procs 4 -sources 8

# 100,000 users of one reminder: a third online over two gateways, the rest
# offline, reached by push through local APNs and FCM servers and stored in
# their inboxes.
wsload-mixed:
	scripts/testenv.sh $(GO) run ./cmd/wsload -clients 33334 -offline 66666 -gateways 2 -client-procs 2 -sources 8

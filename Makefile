# runbox — build, run, test. `make` builds bin/runbox, one static file: a
# front that runs `runbox run` and `runbox shell` itself and embeds
# runbox-server for every other command (runbox-init is embedded in both);
# `make run` builds it and starts `runbox serve` on its defaults
# (127.0.0.1:8080); `make test` runs the whole suite (as root,
# every isolation test runs), then every fuzz target briefly, then installs
# the Debian package (`make deb`) and runs a program through it.

GO          ?= go
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test lint fuzz bench clean deb

all: build

# In this order: runbox-server embeds runbox-init, the front embeds both.
build:
	$(GO) generate ./internal/initbin
	VERSION=$(VERSION) $(GO) generate ./internal/serverbin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/runbox ./cmd/runbox

run: build
	./bin/runbox serve

lint: build
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	GOOS=darwin $(GO) build ./...
	$(GO) run $(STATICCHECK) ./...

# The race detector needs cgo (gcc); the packages are tested with it. One
# package at a time (-p 1): the leak tests compare host-wide counts. Then
# the fuzz targets, then the Debian package installed and used (as root;
# it says what it needs and skips without root).
test: lint
	CGO_ENABLED=1 $(GO) test -race -count=1 -p 1 ./...
	scripts/fuzz.sh
	packaging/test-deb.sh

# Every Fuzz* target for FUZZTIME (default 5s) each; part of `make test`.
fuzz:
	scripts/fuzz.sh

bench: build
	bench/jail.sh
	bench/cli.sh
	bench/http.sh
	bench/jobs.sh
	bench/session.sh

# dist/runbox_<version>_<arch>.deb: bin/runbox, its systemd unit and
# /etc/runbox/runbox.toml (packaging/).
deb: build
	packaging/build-deb.sh

clean:
	rm -rf bin internal/initbin/bin/runbox-init internal/serverbin/bin/runbox-server

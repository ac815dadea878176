# Soma — the two commands a new user needs are `make run` and `make test`.
GO ?= go
# The end-to-end package (cmd/soma) takes 7–11 min on 2 cores; the timeout
# is a safety net well above that, so a slow machine does not fail a passing run.
TEST_TIMEOUT ?= 25m

.PHONY: run build test vet proto bench clean e2e-browser

run: ## start a homeserver on 127.0.0.1:8008 with embedded SQLite in ./data
	$(GO) run ./cmd/soma $(if $(CONFIG),-config $(CONFIG))

build:
	$(GO) build -o bin/soma ./cmd/soma
	$(GO) build -o bin/somactl ./cmd/somactl

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

test: vet ## vet, then every test (race detector on) against SQLite and PostgreSQL
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

e2e-browser: ## only the admin page test in headless Chromium (part of make test too)
	$(GO) test -count 1 -run TestAdminPageInABrowser -v ./cmd/soma/

bench: ## storage and send-path benchmarks on both backends
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 5 ./persistence/... ./cmd/soma/

# proto regenerates the actor message contract; needs protoc (Debian:
# protobuf-compiler) and protoc-gen-go (go install google.golang.org/protobuf/cmd/protoc-gen-go).
proto:
	cd actors/messages && protoc --go_out=. --go_opt=paths=source_relative messages.proto

clean:
	rm -rf bin

# meshbench — build, test, benchmark.
#   make bench   run the default benchmark suite and print where the figures are
#   make test    run every test
GO        ?= go
BIN       ?= bin
BENCHOUT  ?= out/bench
BENCHTIME ?= 2s
# Tests that need pinned external tools (h2spec, grpc-go interop binaries,
# built through `go tool`) fail instead of skipping when this is set.
export MESHBENCH_REQUIRE_TOOLS ?= 1

.PHONY: all build test bench lint fmt vet clean perf-http1 perf-loadgen

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

# Test binaries run one at a time (-p 1): the load generator's accuracy tests
# measure time and must not share the two cores with other packages' tests.
test: build
	$(GO) vet ./...
	$(GO) test -p 1 -count=1 -timeout 20m ./...

bench: build
	@mkdir -p $(BENCHOUT)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 1 ./proxy/... | tee $(BENCHOUT)/proxy-bench.txt
	@echo
	@echo "benchmark figures: $(BENCHOUT)/proxy-bench.txt"

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# HTTP/1.1 keep-alive through meshproxy vs haproxy vs direct (needs wrk,
# haproxy and nginx from Debian); see docs/performance.md.
perf-http1: build
	bash scripts/perf-http1.sh

clean:
	rm -rf $(BIN) out

# meshbench load --rate max vs wrk (HTTP/1.1) and vs h2load (h2c) against one
# nginx (needs wrk, nghttp2-client and nginx from Debian); see docs/performance.md.
perf-loadgen: build
	bash scripts/perf-loadgen.sh

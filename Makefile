# meshbench — build, test, benchmark.
#   make bench   run the default scenario on the local platform and print where the report is
#   make test    run every test
GO        ?= go
BIN       ?= bin
BENCHOUT  ?= out/runs
MICROOUT  ?= out/bench
BENCHTIME ?= 2s
# Tests that need pinned external tools (h2spec, grpc-go interop binaries,
# built through `go tool`) fail instead of skipping when this is set.
export MESHBENCH_REQUIRE_TOOLS ?= 1

.PHONY: all build test fuzz bench peers conform gate gate-rates microbench lint fmt vet clean perf-http1 perf-h2 perf-loadgen

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

# Test binaries run one at a time (-p 1): the load generator's accuracy tests
# measure time and must not share the two cores with other packages' tests.
test: build
	$(GO) vet ./...
	$(GO) test -p 1 -count=1 -timeout 20m ./...
	$(MAKE) fuzz

# Each fuzz target briefly, after the unit tests (go test -fuzz takes one
# target at a time). Seed corpora live in each package's testdata/fuzz/;
# a failure writes its input there too. Minimizing new inputs is capped so
# a short run spends its time fuzzing. Each target runs a count of inputs
# (about 10 s each on a 2-core machine), not a duration: Go 1.26's fuzzing
# coordinator can report its own -fuzztime deadline as a failure
# ("context deadline exceeded", golang/go#75804, fixed in Go 1.27), which a
# count never reaches. Longer: make fuzz FUZZTIME=5000000x (or FUZZTIME=5m)
FUZZTIME ?=
FUZZ      = $(GO) test -run '^$$' -fuzzminimizetime 100x
fuzz:
	$(FUZZ) -fuzztime $(or $(FUZZTIME),200000x) -fuzz '^FuzzConfigParse$$' ./proxy/config
	$(FUZZ) -fuzztime $(or $(FUZZTIME),250000x) -fuzz '^FuzzRouteMatch$$' ./proxy/route
	$(FUZZ) -fuzztime $(or $(FUZZTIME),12000x) -fuzz '^FuzzHeaders$$' ./proxy
	$(FUZZ) -fuzztime $(or $(FUZZTIME),20000x) -fuzz '^FuzzFramingGuard$$' ./proxy
	$(FUZZ) -fuzztime $(or $(FUZZTIME),1000000x) -fuzz '^FuzzNormalize$$' ./proxy/pathnorm

# The default scenario (scenarios/default.yaml) on the local platform: every
# cell deployed as processes on loopback addresses, measured, torn down;
# then the report. The run directory is the last line meshbench run prints.
# A run with failed cells is still reported (and make fails); an interrupted
# one is not.
bench: build
	@dir=$$($(BIN)/meshbench run scenarios/default.yaml --out $(BENCHOUT)); rc=$$?; \
	if [ $$rc -eq 130 ] || [ ! -f "$$dir/run.json" ]; then exit $$((rc ? rc : 1)); fi; \
	$(BIN)/meshbench report $$dir || exit 1; \
	echo; echo "report: $$dir/report/report.html"; exit $$rc

# The reference proxy beside nginx, HAProxy, Caddy (and Envoy where an envoy
# binary is on PATH) in the same cells, 3 repeats (about 30 minutes on 2
# cores; make test runs it with --quick). See docs/peers.md.
peers: build
	@dir=$$($(BIN)/meshbench run peers --out $(BENCHOUT)); rc=$$?; \
	if [ $$rc -eq 130 ] || [ ! -f "$$dir/run.json" ]; then exit $$((rc ? rc : 1)); fi; \
	$(BIN)/meshbench report $$dir || exit 1; \
	echo; echo "report: $$dir/report/report.html"; exit $$rc

# The conformance suite against the reference proxy and every installed
# peer (docs/conformance.md); make test runs the same suite in
# TestConformAll. CONFORM_ARGS passes flags: make conform CONFORM_ARGS='--profile grpc'
CONFORMOUT ?= out/conform
CONFORM_ARGS ?= --proxy all
conform: build
	$(BIN)/meshbench conform $(CONFORM_ARGS) --out $(CONFORMOUT)/$$(date -u +%Y%m%d-%H%M%S)

# The regression gate (docs/gate.md): this checkout's meshproxy (the
# candidate, uncommitted changes included) against the one built from
# GATE_BASE (default: the previous commit) with ci/gate.yaml, both builds
# side by side in one run. make reports the gate's exit as "Error N" (1
# regression, 3 inconclusive) and itself exits 2; gate.md is in out/gate.
# Compare uncommitted work with the last commit: make gate GATE_BASE=HEAD
GATE_BASE ?= HEAD~1
GATE_SPEC ?= ci/gate.yaml
GATEOUT   ?= out/gate
gate: build
	@tmp=$$(mktemp -d); trap 'git worktree remove --force "$$tmp/base" >/dev/null 2>&1; rm -rf "$$tmp"' EXIT; \
	git rev-parse --verify -q "$(GATE_BASE)^{commit}" >/dev/null || { echo "make gate: GATE_BASE=$(GATE_BASE) is not a commit of this clone (a shallow clone has no previous commit: git fetch --deepen=1)"; exit 2; }; \
	git worktree add -q --detach "$$tmp/base" "$(GATE_BASE)" && \
	(cd "$$tmp/base" && CGO_ENABLED=0 $(GO) build -trimpath -o "$$tmp/meshproxy-base" ./cmd/meshproxy) && \
	$(BIN)/meshbench gate --baseline $(GATE_SPEC) --base-proxy "$$tmp/meshproxy-base" --candidate-proxy $(BIN)/meshproxy --out $(GATEOUT)

# The gate's error rates (docs/gate.md): GATE_RUNS gate runs each of two
# identical builds, of a candidate with CPU added to every request and of
# one with latency added (package internal/inject), tallied into
# $(GATEOUT)/rates. About 2 minutes per gate run on 2 cores.
GATE_RUNS ?= 20
gate-rates: build
	bash scripts/gate-rates.sh $(GATE_RUNS) $(GATE_SPEC) $(GATEOUT)/rates

# Go benchmarks of the proxy's forward path (allocations per request).
microbench: build
	@mkdir -p $(MICROOUT)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 1 ./proxy/... | tee $(MICROOUT)/proxy-bench.txt
	@echo
	@echo "benchmark figures: $(MICROOUT)/proxy-bench.txt"

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
# h2c and gRPC unary through meshproxy vs haproxy (proto h2 on both sides) vs
# direct, with h2load and meshbench load (needs nghttp2-client, haproxy and
# nginx from Debian); see docs/performance.md.
perf-h2: build
	bash scripts/perf-h2.sh

perf-loadgen: build
	bash scripts/perf-loadgen.sh

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/meshbench/meshbench/backends"
)

// backendShutdownGrace bounds how long `meshbench backend` waits for
// in-flight requests after a signal.
const backendShutdownGrace = 5 * time.Second

// runBackend is `meshbench backend`: it serves a test backend until ctx is
// cancelled (SIGINT or SIGTERM), then drains and exits 0.
func runBackend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("backend", "meshbench backend --listen ADDR [--grpc-listen ADDR] [--latency SPEC] [--error-rate F] [--name N] [--response-size B] [--seed S] [--spin D]", stderr)
	var cfg backends.Config
	fs.StringVar(&cfg.HTTPAddr, "listen", "", "`ADDR` of the HTTP/1.1 + h2c port (required; port 0 picks one)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-listen", "", "`ADDR` of the gRPC port (default: no gRPC port)")
	fs.StringVar(&cfg.Latency, "latency", "none", "latency `SPEC`: "+backends.LatencyGrammar)
	fs.Float64Var(&cfg.ErrorRate, "error-rate", 0, "share of requests in [0, 1] answered with HTTP 503 / gRPC UNAVAILABLE")
	fs.StringVar(&cfg.Name, "name", "", "`NAME` sent in X-Backend / x-backend (default: the bound HTTP address)")
	fs.IntVar(&cfg.ResponseSize, "response-size", 0, "response body size in `BYTES`")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "requests served at once, the rest queue in arrival order (0: unlimited)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of delays and injected errors (0: random)")
	fs.DurationVar(&cfg.Spin, "spin", 0, "spin this long before each delayed response is due instead of sleeping, for precise delays at a CPU cost (0: only sleep)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if cfg.HTTPAddr == "" {
		fmt.Fprintln(stderr, "meshbench backend: --listen is required")
		fs.Usage()
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	b, err := backends.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench backend: %v\n", err)
		return 2
	}
	if err := b.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "meshbench backend: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "http %s\n", b.HTTPAddr())
	if a := b.GRPCAddr(); a != "" {
		fmt.Fprintf(stdout, "grpc %s\n", a)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendShutdownGrace)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "meshbench backend: %v\n", err)
		return 1
	}
	return 0
}

// Command inject builds meshproxy with a known regression compiled in
// (package inject), for measuring the regression gate:
//
//	go run ./internal/inject/cmd/inject -kind cpu -amount 8us -out /tmp/meshproxy-cpu
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/meshbench/meshbench/internal/inject"
)

func main() {
	kind := flag.String("kind", inject.KindCPU, "the regression: cpu (busy-wait) or latency (kernel sleep)")
	amount := flag.Duration("amount", 10*time.Microsecond, "how long, per forwarded request and proxy")
	out := flag.String("out", "", "the meshproxy binary to write")
	root := flag.String("root", ".", "the meshbench module's directory")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: inject -kind cpu|latency -amount D -out PATH [-root DIR]")
		os.Exit(2)
	}
	if err := inject.Build(context.Background(), *root, *out, *kind, *amount); err != nil {
		fmt.Fprintln(os.Stderr, "inject:", err)
		os.Exit(1)
	}
}

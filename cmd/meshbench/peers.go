package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/meshbench/meshbench/peers"
)

// runPeers prints each peer proxy: whether its binary is here and its
// version, the package that installs it, where its metrics are, and what
// it can and cannot do.
func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshbench peers\n\nLists the peer proxies a scenario's proxy dimension may name, whether each is installed, and its capabilities (docs/peers.md).")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	missing := 0
	for _, a := range peers.All() {
		fmt.Fprintf(stdout, "%s\n", a.Name())
		bin, err := peers.Find(a)
		if err != nil {
			missing++
			fmt.Fprintf(stdout, "  binary:    missing: %v\n", err)
		} else {
			v, err := a.Version(ctx, bin)
			if err != nil {
				v = "unknown (" + err.Error() + ")"
			}
			fmt.Fprintf(stdout, "  binary:    %s, version %s\n", bin, v)
		}
		if a.Package() != "" {
			fmt.Fprintf(stdout, "  package:   %s (Debian)\n", a.Package())
		}
		c := a.Capabilities()
		fmt.Fprintf(stdout, "  metrics:   %s\n", c.Metrics)
		for _, k := range slices.Sorted(maps.Keys(c.Balancers)) {
			fmt.Fprintf(stdout, "  balancer:  %-22s %s\n", k, c.Balancers[k])
		}
		for _, k := range slices.Sorted(maps.Keys(c.Missing)) {
			fmt.Fprintf(stdout, "  n/a:       %-22s %s\n", k, c.Missing[k])
		}
	}
	if missing > 0 {
		fmt.Fprintf(stdout, "\n%d of %d peers are not installed: a packaged peer's cells fail with the package to install; Envoy's are n/a (docs/peers.md).\n",
			missing, len(peers.All()))
	}
	return 0
}

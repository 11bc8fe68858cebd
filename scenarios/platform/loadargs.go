package platform

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
)

// LoadArgs returns the `meshbench load` command line (after the binary)
// of a load plan: its targets resolved by r (the load generator's
// resolver), quiet, writing its result to resultFile and its HdrHistogram
// interval log to hdrLog, with the cell's labels.
func LoadArgs(l scenarios.LoadPlan, cell result.Cell, r scenarios.Resolver, resultFile, hdrLog string) ([]string, error) {
	if len(l.Targets) == 0 {
		return nil, errors.New("the load plan has no target")
	}
	args := []string{"load", "--protocol", l.Protocol, "--quiet",
		"--out", resultFile, "--hdr-log", hdrLog}
	for _, t := range l.Targets {
		a, err := scenarios.ResolveTarget(t, r)
		if err != nil {
			return nil, fmt.Errorf("the load's targets: %w", err)
		}
		args = append(args, "--target", TargetURL(l.Protocol, a))
	}
	rate := "max"
	if l.Rate > 0 {
		rate = strconv.FormatFloat(l.Rate, 'g', -1, 64)
	}
	args = append(args, "--rate", rate)
	if l.Connections > 0 {
		args = append(args, "--connections", strconv.Itoa(l.Connections))
	}
	if l.Streams > 0 {
		args = append(args, "--streams", strconv.Itoa(l.Streams))
	}
	if l.Duration > 0 {
		args = append(args, "--duration", l.Duration.String())
	}
	if l.Warmup > 0 {
		args = append(args, "--warmup", l.Warmup.String())
	}
	if l.Timeout > 0 {
		args = append(args, "--timeout", l.Timeout.String())
	}
	if l.Authority != "" {
		args = append(args, "--authority", l.Authority)
	}
	keys := make([]string, 0, len(cell.Labels))
	for k := range cell.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "--label", k+"="+cell.Labels[k])
	}
	return args, nil
}

// TargetURL turns a plan target into what the load generator expects: a
// URL for HTTP protocols, host:port for gRPC.
func TargetURL(protocol, t string) string {
	if protocol == loadgen.GRPC {
		if u, err := url.Parse(t); err == nil && u.Host != "" {
			return u.Host
		}
		return t
	}
	if strings.Contains(t, "://") {
		return t
	}
	if protocol == loadgen.H2 {
		return "https://" + t
	}
	return "http://" + t
}

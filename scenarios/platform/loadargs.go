package platform

import (
	"encoding/json"
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
// of a load plan (a mix as --mix JSON, a search as --search): its targets resolved by r (the load generator's
// resolver), quiet, writing its result to resultFile and its HdrHistogram
// interval log to hdrLog, with the cell's labels.
func LoadArgs(l scenarios.LoadPlan, cell result.Cell, r scenarios.Resolver, resultFile, hdrLog string) ([]string, error) {
	if len(l.Targets) == 0 && len(l.Mix) == 0 {
		return nil, errors.New("the load plan has no target")
	}
	args := []string{"load", "--quiet", "--out", resultFile, "--hdr-log", hdrLog}
	if len(l.Mix) == 0 {
		args = append(args, "--protocol", l.Protocol)
	}
	resolve := func(protocol string, ts []string) ([]string, error) {
		var out []string
		for _, t := range ts {
			a, err := scenarios.ResolveTarget(t, r)
			if err != nil {
				return nil, fmt.Errorf("the load's targets: %w", err)
			}
			out = append(out, TargetURL(protocol, a))
		}
		return out, nil
	}
	targets, err := resolve(l.Protocol, l.Targets)
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		args = append(args, "--target", t)
	}
	if len(l.Mix) > 0 {
		streams := make([]loadgen.Stream, len(l.Mix))
		for i, st := range l.Mix {
			ts, err := resolve(st.Protocol, st.Targets)
			if err != nil {
				return nil, fmt.Errorf("stream %s: %w", st.Name, err)
			}
			streams[i] = loadgen.Stream{Name: st.Name, Protocol: st.Protocol, Targets: ts, Authority: st.Authority,
				Share: st.Share, Rate: st.Rate, Connections: st.Connections, Streams: st.Streams, GRPCMode: st.GRPCMode,
				BodySize: st.BodySize, ResponseSize: st.ResponseSize}
		}
		b, err := json.Marshal(streams)
		if err != nil {
			return nil, fmt.Errorf("encoding the mix: %w", err)
		}
		args = append(args, "--mix", string(b))
	}
	rate := "max"
	if l.Rate > 0 {
		rate = strconv.FormatFloat(l.Rate, 'g', -1, 64)
	}
	args = append(args, "--rate", rate)
	if l.Search != nil {
		args = append(args, "--search", l.Search.Flag())
	}
	if l.NewConnectionPerRequest {
		args = append(args, "--new-connection-per-request")
	}
	if l.Engine != "" && l.Engine != loadgen.EngineMeshbench {
		args = append(args, "--engine", l.Engine)
	}
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

package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Stream is one stream of a mixed load (Spec.Mix): its own protocol,
// targets, rate and sizes; the Spec's duration, warm-up, timeout, arrival,
// TLS and labels apply to every stream.
type Stream struct {
	// Name identifies the stream in the result (Result.Stream).
	Name     string   `json:"name"`
	Protocol string   `json:"protocol"`
	Targets  []string `json:"targets"`
	// Authority is the Host / :authority of the stream's requests.
	Authority string `json:"authority,omitempty"`
	// Share is the stream's fraction of the Spec's Rate; Rate, when Share
	// is 0, is its own rate. One of them is set.
	Share       float64 `json:"share,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	Connections int     `json:"connections"`
	Streams     int     `json:"streams,omitempty"`
	GRPCMode    string  `json:"grpc_mode,omitempty"`
	// BodySize and ResponseSize are the request body (gRPC payload) and
	// the gRPC response payload in bytes.
	BodySize     int `json:"body_size,omitempty"`
	ResponseSize int `json:"response_size,omitempty"`
}

// mixStart is how far in the future a mix's common schedule begins, so
// that every stream's workers are running before it.
const mixStart = 50 * time.Millisecond

// streamSpecs returns the spec of each stream of a mix.
func streamSpecs(spec Spec) ([]Spec, error) {
	if spec.Target != "" || len(spec.Targets) > 0 {
		return nil, errors.New("load spec: a mix names its targets per stream; leave the target empty")
	}
	var errs []error
	names := map[string]bool{}
	out := make([]Spec, len(spec.Mix))
	for i, st := range spec.Mix {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("stream %d (%s): %s", i, st.Name, fmt.Sprintf(format, args...)))
		}
		switch {
		case st.Name == "":
			bad("no name")
		case names[st.Name]:
			bad("name used twice")
		}
		names[st.Name] = true
		rate := st.Rate
		switch {
		case st.Share < 0 || st.Share > 1:
			bad("share %v: want a fraction from 0 to 1", st.Share)
		case st.Share > 0 && st.Rate > 0:
			bad("both a share and a rate: set one")
		case st.Share > 0 && spec.Rate <= 0:
			bad("a share of no total rate: set the load's rate")
		case st.Share > 0:
			rate = st.Share * spec.Rate
		case st.Rate <= 0:
			bad("neither a share nor a rate")
		}
		sub := spec
		sub.Mix, sub.Search, sub.Progress = nil, nil, nil
		sub.Protocol, sub.Authority, sub.Rate = st.Protocol, st.Authority, rate
		sub.Connections, sub.Streams, sub.GRPCMode = st.Connections, st.Streams, st.GRPCMode
		sub.BodySize, sub.ResponseSize = st.BodySize, st.ResponseSize
		sub.Target, sub.Targets = "", slices.Clone(st.Targets)
		if len(st.Targets) == 1 {
			sub.Target, sub.Targets = st.Targets[0], nil
		}
		sub.Labels = maps.Clone(spec.Labels)
		if sub.Labels == nil {
			sub.Labels = map[string]string{}
		}
		sub.Labels["stream"] = st.Name
		if spec.SpinWindow == 0 {
			sub.SpinWindow = AutoSpin(mixRate(spec)) // one budget for all the streams
		}
		if spec.Seed != 0 {
			sub.Seed = spec.Seed + uint64(i)*1_000_003
		}
		out[i] = sub
	}
	return out, errors.Join(errs...)
}

// runMix runs the streams of a mix at once, on one schedule, and merges
// their results.
func runMix(ctx context.Context, spec Spec, f faults) (*Result, error) {
	specs, err := streamSpecs(spec)
	if err != nil {
		return nil, err
	}
	var engines []*engine
	defer func() {
		for _, e := range engines {
			e.close()
		}
	}()
	for i, s := range specs {
		e, err := prepare(ctx, s, f)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", spec.Mix[i].Name, err)
		}
		engines = append(engines, e)
	}
	if err := startInTime(spec.Start); err != nil {
		return nil, err
	}
	start := cmp.Or(spec.Start, time.Now().Add(mixStart))
	for _, e := range engines {
		e.begin(start)
	}
	done := make(chan struct{})
	go progress(engines, spec.Progress, done)
	for _, e := range engines {
		e.wait()
	}
	close(done)
	parts := make([]*Result, len(engines))
	for i, e := range engines {
		if parts[i], err = e.result(ctx.Err() != nil); err != nil {
			return nil, fmt.Errorf("stream %s: %w", spec.Mix[i].Name, err)
		}
		parts[i].Stream = spec.Mix[i].Name
	}
	m, err := Merge(parts)
	if err != nil {
		return nil, err
	}
	m.Labels = maps.Clone(spec.Labels)
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Protocol = ProtocolMix
	m.RequestedRate = 0
	for _, p := range parts {
		m.RequestedRate += p.RequestedRate
		m.Mix = append(m.Mix, *p)
	}
	return m, nil
}

// ProtocolMix is the protocol of a mixed result: its streams have their
// own.
const ProtocolMix = "mix"

// mixRate is the total rate of a mix's streams.
func mixRate(spec Spec) float64 {
	var total float64
	for _, st := range spec.Mix {
		if st.Share > 0 {
			total += st.Share * spec.Rate
		} else {
			total += st.Rate
		}
	}
	return total
}

package scenarios

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/meshbench/meshbench/internal/names"
	"github.com/meshbench/meshbench/loadgen"
)

// DimMix is the dimension of a mixed load's shares: its values are the
// names of load.shares.
const DimMix = "mix"

// RateSpec is load.rate as written: a number of requests per second, a
// list of them (a sweep: each value is a value of the rate dimension), or
// {search: {p99: 10ms, errors: 0.1%, max: 20000}}: a search for the
// highest rate that meets the objective (see loadgen.ParseSearch).
type RateSpec struct {
	Rate   float64
	Rates  []float64
	Search *loadgen.SearchSpec
}

// UnmarshalYAML reads any of the three forms.
func (r *RateSpec) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			return fmt.Errorf("%q: want requests per second, a list of them, or {search: {...}}", n.Value)
		}
		r.Rate = f
	case yaml.SequenceNode:
		r.Rates = []float64{}
		for _, c := range n.Content {
			f, err := strconv.ParseFloat(c.Value, 64)
			if c.Kind != yaml.ScalarNode || err != nil {
				return fmt.Errorf("line %d: %q: a sweep lists requests per second", c.Line, c.Value)
			}
			r.Rates = append(r.Rates, f)
		}
	case yaml.MappingNode:
		if len(n.Content) != 2 || n.Content[0].Value != "search" || n.Content[1].Kind != yaml.MappingNode {
			return errors.New("a rate mapping is {search: {p99: 10ms, errors: 0.1%, max: 20000}}")
		}
		fields := map[string]string{}
		m := n.Content[1]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i+1].Kind != yaml.ScalarNode {
				return fmt.Errorf("search.%s: want a value", m.Content[i].Value)
			}
			fields[m.Content[i].Value] = m.Content[i+1].Value
		}
		ss, err := loadgen.ParseSearch(fields)
		if err != nil {
			return err
		}
		r.Search = &ss
	default:
		return errors.New("want requests per second, a list of them, or {search: {...}}")
	}
	return nil
}

// Fraction is a share written as a fraction (0.5) or a percentage (50%).
type Fraction float64

// UnmarshalText reads "0.5" or "50%".
func (f *Fraction) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	scale := 1.0
	if v, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = v, 0.01
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v*scale < 0 || v*scale > 1 {
		return errors.New("want a share from 0 to 1, or 0% to 100%")
	}
	*f = Fraction(v * scale)
	return nil
}

// StreamSettings is one stream of a mixed load (load.mix): requests of its
// own protocol and sizes, to its own service, at the same time as the
// other streams, through the same proxies.
type StreamSettings struct {
	// Name identifies the stream in results and in load.shares.
	Name string `yaml:"name"`
	// Protocol is http1 (default), h2c or grpc.
	Protocol string `yaml:"protocol"`
	// GRPCMode is unary (default: one call per request) or stream (one
	// bidirectional stream per worker, a message round trip per request).
	GRPCMode string `yaml:"grpc_mode"`
	// Service is the destination (default load.service).
	Service string `yaml:"service"`
	// Share is the stream's fraction of load.rate; Rate instead is its
	// own rate. Under a mix dimension, load.shares gives the shares.
	Share *Fraction `yaml:"share"`
	Rate  float64   `yaml:"rate"`
	// Connections and Streams default to the load's.
	Connections int `yaml:"connections"`
	Streams     int `yaml:"streams"`
	// RequestSize is the request body (gRPC payload) in bytes;
	// ResponseSize the gRPC response payload (an HTTP backend's response
	// size is its personality's response_size).
	RequestSize  int `yaml:"request_size"`
	ResponseSize int `yaml:"response_size"`
}

// mixLoad validates load.mix and load.shares.
func (v *validator) mixLoad(s *Scenario) {
	l := &s.Load
	if len(l.Mix) == 0 {
		if l.Shares != nil {
			v.fail("load.shares", "shares divide the rate among the streams of load.mix, which has none")
		}
		return
	}
	seen := map[string]bool{}
	ownShares := 0.0
	anyShare, anyRate := false, false
	for i := range l.Mix {
		st := &l.Mix[i]
		p := fmt.Sprintf("load.mix[%d]", i)
		switch {
		case !names.Safe(st.Name):
			v.fail(p+".name", "%q: use lower-case letters, digits, '-' and '_'", st.Name)
		case seen[st.Name]:
			v.fail(p+".name", "%q: stream name used twice", st.Name)
		}
		seen[st.Name] = true
		if st.Protocol == "" {
			st.Protocol = ProtoHTTP1
		}
		if !slices.Contains(Protocols(), st.Protocol) {
			v.fail(p+".protocol", "%q: must be one of %s", st.Protocol, strings.Join(Protocols(), ", "))
		}
		switch st.GRPCMode {
		case "":
		case loadgen.GRPCUnary, loadgen.GRPCStream:
			if st.Protocol != ProtoGRPC {
				v.fail(p+".grpc_mode", "only for protocol grpc")
			}
		default:
			v.fail(p+".grpc_mode", "%q: must be unary or stream", st.GRPCMode)
		}
		if st.Service == "" {
			st.Service = l.Service
		}
		if s.service(st.Service) == nil {
			v.fail(p+".service", "%q: no service has this name", st.Service)
		}
		if st.Connections == 0 {
			st.Connections = l.Connections
		}
		if st.Streams == 0 {
			st.Streams = l.Streams
		}
		if st.Protocol == ProtoHTTP1 {
			st.Streams = 1
		}
		if st.Connections < 1 {
			v.fail(p+".connections", "%d: must be at least 1", st.Connections)
		}
		if st.Streams < 1 || st.Streams > MaxStreams {
			v.fail(p+".streams", "%d: must be 1 to %d", st.Streams, MaxStreams)
		}
		if st.RequestSize < 0 || st.ResponseSize < 0 {
			v.fail(p, "sizes must not be negative")
		}
		if st.ResponseSize > 0 && st.Protocol != ProtoGRPC {
			v.fail(p+".response_size", "an HTTP response's size is the backend's (services[].backend.response_size); a stream sets it for grpc only")
		}
		switch {
		case st.Share != nil && st.Rate != 0:
			v.fail(p, "share and rate are exclusive")
		case st.Share != nil:
			anyShare = true
			ownShares += float64(*st.Share)
		case st.Rate < 0:
			v.fail(p+".rate", "must be > 0")
		case st.Rate > 0:
			anyRate = true
		}
	}
	if len(s.Matrix.Protocol) > 0 {
		v.fail("matrix.protocol", "a mixed load gives each stream its protocol: leave out the protocol dimension")
	}
	if l.Shares == nil {
		switch {
		case len(s.Matrix.Mix) > 0:
			v.fail("matrix.mix", "no load.shares to choose from")
		case anyShare && anyRate:
			v.fail("load.mix", "give every stream a share of load.rate, or every stream its own rate")
		case anyRate && l.Search != nil:
			v.fail("load.rate", "a search probes total rates, which the streams divide by their shares: give the streams shares instead of rates")
		case anyRate && (l.Rate != 0 || l.Rates != nil):
			v.fail("load.rate", "the streams have their own rates: leave out load.rate")
		case anyShare && math.Abs(ownShares-1) > 1e-6:
			v.fail("load.mix", "the shares add up to %v: they divide load.rate and must add up to 100%%", ownShares)
		case !anyShare && !anyRate:
			v.fail("load.mix", "give every stream a share of load.rate (or its own rate), or name load.shares")
		}
		return
	}
	if anyShare || anyRate {
		v.fail("load.mix", "with load.shares the streams take their shares from there: leave out their share and rate")
	}
	if len(l.Shares) == 0 {
		v.fail("load.shares", "empty")
	}
	for _, name := range slices.Sorted(maps.Keys(l.Shares)) {
		p := "load.shares." + name
		if !names.Safe(name) {
			v.fail(p, "%q: a share set's name is a matrix value: use lower-case letters, digits, '-' and '_'", name)
		}
		sum := 0.0
		for _, st := range slices.Sorted(maps.Keys(l.Shares[name])) {
			if !seen[st] {
				v.fail(p+"."+st, "no stream of load.mix has this name")
			}
			sum += float64(l.Shares[name][st])
		}
		if math.Abs(sum-1) > 1e-6 {
			v.fail(p, "the shares add up to %v: they must add up to 100%%", sum)
		}
	}
}

// mixOf returns the streams of a cell with their shares (mix is the mix
// label, "" without the dimension); a stream without a share there does
// not run.
func (s *Scenario) mixOf(mix string) []StreamSettings {
	l := s.Load
	if len(l.Mix) == 0 {
		return nil
	}
	if l.Shares == nil {
		return slices.Clone(l.Mix)
	}
	if mix == "" {
		mix = slices.Sorted(maps.Keys(l.Shares))[0]
	}
	var out []StreamSettings
	for _, st := range l.Mix {
		f := l.Shares[mix][st.Name]
		if f <= 0 {
			continue
		}
		st.Share = &f
		out = append(out, st)
	}
	return out
}

// inFlight is how many requests the cell's load can have in flight.
func (l LoadSettings) inFlight() int {
	if len(l.Mix) == 0 {
		return l.Connections * l.Streams
	}
	n := 0
	for _, st := range l.Mix {
		n += st.Connections * st.Streams
	}
	return n
}

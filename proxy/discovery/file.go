package discovery

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/meshbench/meshbench/internal/yamlstrict"
)

// FileConfig configures File.
type FileConfig struct {
	// Path is the endpoints file (format: see ParseFile). It may be a
	// symbolic link, as in a mounted Kubernetes ConfigMap.
	Path string
	// PollInterval is how often the file is read again. Default 1s.
	PollInterval time.Duration
	// Log receives warnings about unreadable or invalid content and a line
	// for every applied change. Default slog.Default().
	Log *slog.Logger
	// Polled, when set, is called after every poll (a test's way to know
	// the source has seen what was written).
	Polled func()
}

// File watches a YAML file and re-reads it when its content changes.
//
// Run reads the file at start and fails when it is missing or invalid.
// Afterwards it reads the file every PollInterval, following symbolic links
// anew each time, and compares the content with what it saw last, so that
// writes in place, replacement by rename and symlink swaps are all noticed.
// A change that parses is delivered (when the set differs); content that
// does not parse, or a file that cannot be read, is logged as a warning and
// the last good set stays in force.
func File(cfg FileConfig) Source {
	return &fileSource{cfg: cfg}
}

type fileSource struct {
	cfg FileConfig
}

// Run delivers the file's set at start and after every change until ctx
// ends.
func (s *fileSource) Run(ctx context.Context, update func([]Endpoint)) error {
	path := s.cfg.Path
	interval := cmp.Or(s.cfg.PollInterval, time.Second)
	log := s.cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if interval < 0 {
		return fmt.Errorf("watching endpoints file %s: negative poll interval %s", path, interval)
	}

	seen, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading endpoints file %s: %w", path, err)
	}
	cur, err := ParseFile(path, seen)
	if err != nil {
		return err // every line already starts with path:line
	}
	update(slices.Clone(cur))

	tick := time.NewTicker(interval)
	defer tick.Stop()
	var readErr string // the last read error logged, "" once the file is readable
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		data, err := os.ReadFile(path)
		switch {
		case err != nil:
			if err.Error() != readErr {
				readErr = err.Error()
				log.Warn("cannot read endpoints file, keeping the last endpoints", "path", path, "err", err)
			}
		case bytes.Equal(data, seen):
			readErr = ""
		default:
			readErr = ""
			seen = data
			eps, err := ParseFile(path, data)
			if err != nil {
				log.Warn("invalid endpoints file, keeping the last endpoints", "path", path, "err", err)
				break
			}
			if slices.Equal(eps, cur) {
				break
			}
			cur = eps
			log.Info("endpoints file changed", "path", path, "endpoints", len(eps))
			update(slices.Clone(eps))
		}
		if s.cfg.Polled != nil {
			s.cfg.Polled()
		}
	}
}

// fileDoc is the shape of an endpoints file.
type fileDoc struct {
	// Endpoints is required; an empty list is written [].
	Endpoints *[]string `yaml:"endpoints"`
	// Weights maps endpoints to a weight >= 1; unlisted endpoints weigh 1.
	Weights map[string]int `yaml:"weights"`
}

// ParseFile decodes an endpoints file (exported so `meshproxy --validate` and tests can check one).
//
// The file is YAML with a required list of host:port addresses and an
// optional weight for some of them:
//
//	endpoints:
//	  - 10.0.0.1:8080
//	  - "[fd00::1]:8080"
//	  - backend-2.example:8080
//	weights:            # optional; every key must be listed in endpoints
//	  10.0.0.1:8080: 3
//
// A host is an IP address or a DNS name, a port is in 1..65535, no address
// is listed twice and every weight is at least 1. `endpoints: []` is a
// cluster without endpoints; a file without the endpoints key (such as an
// empty one) is an error, so that a file caught half-written is not taken
// for an empty set. Name is the file name used in error messages. Errors are
// yamlstrict.Errors, every problem with its line and field path. Addresses
// are returned in one spelling (IP addresses as net/netip prints them, host
// names in lower case), sorted.
func ParseFile(name string, data []byte) ([]Endpoint, error) {
	var doc fileDoc
	pos, err := yamlstrict.Decode(name, data, &doc)
	if err != nil {
		return nil, err
	}
	var errs yamlstrict.Errors
	if doc.Endpoints == nil {
		errs = append(errs, pos.Errorf(name, "endpoints", "required (write endpoints: [] for a cluster without endpoints)"))
	}
	var list []string
	if doc.Endpoints != nil {
		list = *doc.Endpoints
	}
	eps := make([]Endpoint, 0, len(list))
	index := map[string]int{} // canonical address -> position in list
	for i, a := range list {
		path := fmt.Sprintf("endpoints[%d]", i)
		addr, problem := canonicalAddr(a)
		if problem != "" {
			errs = append(errs, pos.Errorf(name, path, "%q: %s", a, problem))
			continue
		}
		if j, dup := index[addr]; dup {
			errs = append(errs, pos.Errorf(name, path, "%q: listed before as endpoints[%d]", a, j))
			continue
		}
		index[addr] = i
		eps = append(eps, Endpoint{Addr: addr})
	}
	weighted := map[string]string{} // canonical address -> key as written
	weights := map[string]int{}     // canonical address -> valid weight
	// Weights are checked in file order, so that messages come in that order.
	keys := slices.SortedFunc(maps.Keys(doc.Weights), func(a, b string) int {
		return cmp.Or(cmp.Compare(pos["weights."+a], pos["weights."+b]), cmp.Compare(a, b))
	})
	for _, a := range keys {
		w, path := doc.Weights[a], "weights."+a
		addr, problem := canonicalAddr(a)
		if _, listed := index[addr]; problem != "" || !listed {
			errs = append(errs, pos.Errorf(name, path, "%q is not one of the endpoints", a))
			continue
		}
		if prev, dup := weighted[addr]; dup {
			errs = append(errs, pos.Errorf(name, path, "%q: same endpoint as weights key %q", a, prev))
			continue
		}
		weighted[addr] = a
		if w < 1 {
			errs = append(errs, pos.Errorf(name, path, "weight %d: must be at least 1", w))
			continue
		}
		weights[addr] = w
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *yamlstrict.Error) int { return cmp.Compare(a.Line, b.Line) })
		return nil, errs
	}
	for i := range eps {
		eps[i].Weight = cmp.Or(weights[eps[i].Addr], 1)
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
	return eps, nil
}

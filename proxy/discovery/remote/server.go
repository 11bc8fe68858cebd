package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshbench/meshbench/internal/names"
	"github.com/meshbench/meshbench/proxy/discovery"
)

// Source makes the discovery source of a key (for `meshbench discovery`,
// the Service's EndpointSlices).
type Source func(Key) discovery.Source

// Server answers the protocol's requests (see the package comment). The
// first request for a key starts the key's source; it runs, shared by every
// proxy that asks, until Close. A source that fails to start is answered
// 502 with its error for RetryAfterFailure, then started again by the next
// request.
type Server struct {
	ctx    context.Context
	cancel context.CancelFunc
	source Source
	log    *slog.Logger
	// RetryAfterFailure is how long a failed source's error is answered
	// before a request starts it again. Set before the first request;
	// default 2s.
	RetryAfterFailure time.Duration

	mu      sync.Mutex
	watches map[Key]*watch
	// seq is the last version given to any key: versions of one server
	// never repeat, and it starts at the server's start time so that a
	// restarted server's versions do not meet its predecessor's.
	seq uint64
	wg  sync.WaitGroup
}

// watch is one key's source and its last set.
type watch struct {
	// Guarded by Server.mu.
	version uint64
	set     []Endpoint
	err     error
	changed chan struct{} // closed and replaced on every change
}

// NewServer returns a server whose keys' sets come from source.
func NewServer(source Source, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{ctx: ctx, cancel: cancel, source: source, log: log, RetryAfterFailure: 2 * time.Second,
		watches: map[Key]*watch{}, seq: uint64(time.Now().UnixNano())}
}

// Close stops every source and waits for them to end. Requests waiting
// for a change are answered 503.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// Watching is the number of keys whose sources run.
func (s *Server) Watching() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watches)
}

// ServeHTTP answers GET Path; everything else is 404 or 405.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	key, since, wait, err := parseRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		wt := s.watchLocked(key)
		version, set, werr, changed := wt.version, wt.set, wt.err, wt.changed
		s.mu.Unlock()
		switch {
		case werr != nil:
			http.Error(w, werr.Error(), http.StatusBadGateway)
			return
		case version != 0 && (since == "" || since != strconv.FormatUint(version, 10)):
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			if err := json.NewEncoder(w).Encode(Set{Version: version, Endpoints: set}); err != nil {
				s.log.Debug("answering a discovery request", "err", err)
			}
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			http.Error(w, "the discovery server is stopping", http.StatusServiceUnavailable)
			return
		}
	}
}

// parseRequest reads a request's key, the version it has and how long it
// waits.
func parseRequest(r *http.Request) (Key, string, time.Duration, error) {
	q := r.URL.Query()
	key := Key{Namespace: q.Get("namespace"), Service: q.Get("service"), Port: q.Get("port")}
	switch {
	case !names.DNSLabel(key.Namespace):
		return key, "", 0, fmt.Errorf("namespace %q: a namespace name (DNS label) is required", key.Namespace)
	case !names.DNSLabel(key.Service):
		return key, "", 0, fmt.Errorf("service %q: a service name (DNS label) is required", key.Service)
	case key.Port != "" && !names.DNSLabel(key.Port):
		return key, "", 0, fmt.Errorf("port %q: not a port name", key.Port)
	}
	since := q.Get("version")
	if since != "" {
		if _, err := strconv.ParseUint(since, 10, 64); err != nil {
			return key, "", 0, fmt.Errorf("version %q: not a version this server gave", since)
		}
	}
	wait := DefaultWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxWait {
			return key, "", 0, fmt.Errorf("wait %q: a duration from 0 to %s", v, MaxWait)
		}
		wait = d
	}
	return key, since, wait, nil
}

// watchLocked returns key's watch, starting its source if it has none.
func (s *Server) watchLocked(key Key) *watch {
	if wt, ok := s.watches[key]; ok {
		return wt
	}
	wt := &watch{changed: make(chan struct{})}
	s.watches[key] = wt
	src := s.source(key)
	log := s.log.With("service", key.String())
	log.Info("following", "watching", len(s.watches))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := src.Run(s.ctx, func(eps []discovery.Endpoint) {
			set := make([]Endpoint, len(eps))
			for i, e := range eps {
				set[i] = Endpoint{Addr: e.Addr, Weight: e.Weight}
			}
			s.mu.Lock()
			s.seq++
			wt.version = s.seq
			wt.set = set
			close(wt.changed)
			wt.changed = make(chan struct{})
			s.mu.Unlock()
			log.Debug("endpoints changed", "endpoints", len(set))
		})
		if err == nil || s.ctx.Err() != nil {
			return
		}
		log.Warn("cannot follow", "err", err)
		s.mu.Lock()
		wt.err = err
		close(wt.changed)
		wt.changed = make(chan struct{})
		s.mu.Unlock()
		select {
		case <-time.After(s.RetryAfterFailure):
		case <-s.ctx.Done():
		}
		s.mu.Lock()
		if s.watches[key] == wt {
			delete(s.watches, key)
		}
		s.mu.Unlock()
	}()
	return wt
}

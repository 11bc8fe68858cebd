package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"
)

// Phases of a load run as a ResultServer's GET /status reports them.
const (
	PhaseWarmup    = "warmup"
	PhaseMeasuring = "measuring"
	PhaseDone      = "done"
	PhaseFailed    = "failed"
)

// Status is the body of a ResultServer's GET /status, as the load
// generator serves it and a runner reads it.
type Status struct {
	Phase    string  `json:"phase"`
	Error    string  `json:"error,omitempty"`
	ElapsedS float64 `json:"elapsed_s"`
	// Files are the names GET /files/{name} serves once the run is done.
	Files []string `json:"files,omitempty"`
}

// ResultServer serves a load run's state and, once the run ends, its
// result files over HTTP, for a runner that cannot read the files: the
// load generator as a pod, reached through the Kubernetes API server's pod
// proxy. POST /exit ends the wait.
type ResultServer struct {
	mu     sync.Mutex
	start  time.Time
	warmup time.Duration
	phase  string
	err    string
	files  map[string]string // name -> path, set when the run ends
	exit   chan struct{}
	once   sync.Once
	srv    *http.Server
	ln     net.Listener
}

// StartResultServer listens on addr and serves the run that starts now
// (meshbench load --serve).
func StartResultServer(addr string, warmup time.Duration, log *slog.Logger) (*ResultServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serving the result on %s: %w", addr, err)
	}
	rs := &ResultServer{start: time.Now(), warmup: warmup, phase: PhaseWarmup, exit: make(chan struct{}), ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", rs.status)
	mux.HandleFunc("GET /files/{name}", rs.file)
	mux.HandleFunc("POST /exit", func(w http.ResponseWriter, _ *http.Request) {
		rs.once.Do(func() { close(rs.exit) })
		w.WriteHeader(http.StatusNoContent)
	})
	rs.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := rs.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("result server", "err", err)
		}
	}()
	return rs, nil
}

// Addr is the address the server listens on.
func (rs *ResultServer) Addr() string { return rs.ln.Addr().String() }

func (rs *ResultServer) status(w http.ResponseWriter, _ *http.Request) {
	rs.mu.Lock()
	st := Status{Phase: rs.phase, Error: rs.err, ElapsedS: time.Since(rs.start).Seconds()}
	if st.Phase == PhaseWarmup && time.Since(rs.start) >= rs.warmup {
		st.Phase = PhaseMeasuring
	}
	for name := range rs.files {
		st.Files = append(st.Files, name)
	}
	rs.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

func (rs *ResultServer) file(w http.ResponseWriter, r *http.Request) {
	rs.mu.Lock()
	path, ok := rs.files[r.PathValue("name")]
	rs.mu.Unlock()
	if !ok {
		http.Error(w, "no such file (yet)", http.StatusNotFound)
		return
	}
	http.ServeFile(w, r, path)
}

// Finish records the run's end: its files (paths; empty ones are skipped)
// and its error, if any.
func (rs *ResultServer) Finish(runErr error, paths ...string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.phase = PhaseDone
	if runErr != nil {
		rs.phase, rs.err = PhaseFailed, runErr.Error()
	}
	rs.files = map[string]string{}
	for _, p := range paths {
		if p != "" {
			rs.files[filepath.Base(p)] = p
		}
	}
}

// Wait holds the files until POST /exit, linger or ctx's end, then stops
// the server.
func (rs *ResultServer) Wait(ctx context.Context, linger time.Duration) {
	t := time.NewTimer(linger)
	defer t.Stop()
	select {
	case <-rs.exit:
	case <-t.C:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = rs.srv.Shutdown(sctx)
}

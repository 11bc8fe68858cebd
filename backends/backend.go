package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbench/meshbench/internal/pace"

	"google.golang.org/grpc"
)

// MaxResponseSize bounds the configured and the requested response size.
const MaxResponseSize = 64 << 20

// DefaultHTTPAddr is the HTTP address used when Config.HTTPAddr is empty.
const DefaultHTTPAddr = "127.0.0.1:0"

// Config describes one backend instance. Zero values are valid defaults.
type Config struct {
	// Name is sent in every response (X-Backend header, x-backend gRPC
	// metadata). Empty means the bound HTTP address, e.g. "127.0.0.1:8080".
	Name string
	// HTTPAddr is the address of the HTTP/1.1 + h2c port; port 0 picks a
	// free port. Empty means DefaultHTTPAddr.
	HTTPAddr string
	// GRPCAddr is the address of the gRPC port; empty means no gRPC port.
	GRPCAddr string
	// Latency is a latency spec (see ParseLatency); empty means none.
	Latency string
	// ErrorRate is the share of requests, in [0, 1], answered with HTTP 503
	// or gRPC UNAVAILABLE instead of a normal response.
	ErrorRate float64
	// ResponseSize is the response body size in bytes (default 0), at most
	// MaxResponseSize.
	ResponseSize int
	// Concurrency is how many requests the backend works on at once; the
	// others wait their turn in arrival order, and a request's delay starts
	// when its turn comes. It models a replica of limited capacity, whose
	// queue grows when it gets more than Concurrency/latency requests per
	// second. 0 (the default) means no limit: every request waits only its
	// own delay.
	Concurrency int
	// Seed seeds the random source of delays and injected errors; 0 means
	// a random seed. With a seed and sequential requests the sequence of
	// delays and errors is reproducible.
	Seed uint64
	// Spin makes delays precise: the backend sleeps until Spin before a
	// response is due and spins the rest (see package pace). Timers on
	// virtual machines fire late by a few hundred microseconds, so without
	// it a 2 ms delay is often 2.2–2.6 ms. Spinning costs up to Spin of CPU
	// per delayed response, taken from whatever shares the machine; 0 (the
	// default) only sleeps.
	Spin time.Duration
}

// Personality is what a backend does to each request: how long it waits
// and how often it fails, and how large its responses are. It can be
// changed while the backend runs (SetPersonality, or the admin endpoint).
type Personality struct {
	Latency      Latency
	ErrorRate    float64
	ResponseSize int
	Concurrency  int // 0: unlimited
}

// Validate reports whether p's error rate and response size are in range.
func (p Personality) Validate() error {
	if !(p.ErrorRate >= 0 && p.ErrorRate <= 1) {
		return fmt.Errorf("error rate %v: want a number in [0, 1]", p.ErrorRate)
	}
	if p.ResponseSize < 0 || p.ResponseSize > MaxResponseSize {
		return fmt.Errorf("response size %d: want 0..%d bytes", p.ResponseSize, MaxResponseSize)
	}
	if p.Concurrency < 0 {
		return fmt.Errorf("concurrency %d: want 0 (unlimited) or more", p.Concurrency)
	}
	return nil
}

// state is a Personality with its response body prepared once and, under a
// concurrency limit, the worker slots. Requests keep the state they
// arrived under, so a change of personality starts a fresh set of slots.
type state struct {
	Personality
	body  []byte
	slots chan struct{} // nil: unlimited
}

func newState(p Personality) *state {
	body := make([]byte, p.ResponseSize)
	for i := range body {
		body[i] = 'x'
	}
	st := &state{Personality: p, body: body}
	if p.Concurrency > 0 {
		st.slots = make(chan struct{}, p.Concurrency)
	}
	return st
}

// Backend is one test service: an HTTP/1.1 + h2c port and an optional gRPC
// port that answer every request after a delay drawn from the personality,
// or with an injected error.
type Backend struct {
	cfg Config
	log *slog.Logger

	cur     atomic.Pointer[state]
	adminMu sync.Mutex // serialises changes of cur

	rngMu sync.Mutex
	rng   *rand.Rand

	// Set by Start.
	name      string
	start     time.Time
	httpLn    net.Listener
	grpcLn    net.Listener
	httpSrv   *http.Server
	grpcSrv   *grpc.Server
	serveDone sync.WaitGroup
}

// New validates cfg and returns a Backend that is not yet listening; a nil
// log discards logs.
func New(cfg Config, log *slog.Logger) (*Backend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	lat, err := ParseLatency(cfg.Latency)
	if err != nil {
		return nil, fmt.Errorf("backend config: %w", err)
	}
	p := Personality{Latency: lat, ErrorRate: cfg.ErrorRate, ResponseSize: cfg.ResponseSize, Concurrency: cfg.Concurrency}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("backend config: %w", err)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	b := &Backend{
		cfg: cfg,
		log: log,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	b.cur.Store(newState(p))
	return b, nil
}

// Start binds the ports and starts serving in the background; ctx bounds
// only the binding. The stall windows of the latency personality are
// aligned to the moment Start binds. Call Shutdown to stop.
func (b *Backend) Start(ctx context.Context) error {
	if b.httpLn != nil {
		return errors.New("start backend: already started")
	}
	var lc net.ListenConfig
	httpLn, err := lc.Listen(ctx, "tcp", b.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("start backend: listen HTTP on %s: %w", b.cfg.HTTPAddr, err)
	}
	var grpcLn net.Listener
	if b.cfg.GRPCAddr != "" {
		grpcLn, err = lc.Listen(ctx, "tcp", b.cfg.GRPCAddr)
		if err != nil {
			httpLn.Close()
			return fmt.Errorf("start backend: listen gRPC on %s: %w", b.cfg.GRPCAddr, err)
		}
	}
	b.httpLn, b.grpcLn = httpLn, grpcLn
	b.name = b.cfg.Name
	if b.name == "" {
		b.name = httpLn.Addr().String()
	}
	b.start = time.Now()

	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	b.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(b.serveHTTP),
		Protocols:         &protos,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	b.serveDone.Go(func() {
		if err := b.httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("backend HTTP server stopped", "addr", httpLn.Addr().String(), "err", err)
		}
	})
	if grpcLn != nil {
		b.grpcSrv = b.newGRPCServer()
		b.serveDone.Go(func() {
			if err := b.grpcSrv.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				b.log.Error("backend gRPC server stopped", "addr", grpcLn.Addr().String(), "err", err)
			}
		})
	}
	b.log.Info("backend started", "name", b.name, "http", b.HTTPAddr(), "grpc", b.GRPCAddr(),
		"latency", b.cur.Load().Latency.String(), "error_rate", b.cfg.ErrorRate, "response_size", b.cfg.ResponseSize)
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests
// to finish until ctx is done, then closes what is left.
func (b *Backend) Shutdown(ctx context.Context) error {
	if b.httpSrv == nil {
		return nil
	}
	var errs []error
	grpcDone := make(chan struct{})
	go func() {
		defer close(grpcDone)
		if b.grpcSrv != nil {
			b.grpcSrv.GracefulStop()
		}
	}()
	if err := b.httpSrv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shut down backend HTTP server: %w", err))
		b.httpSrv.Close()
	}
	select {
	case <-grpcDone:
	case <-ctx.Done():
		if b.grpcSrv == nil {
			break
		}
		b.grpcSrv.Stop()
		<-grpcDone
		errs = append(errs, fmt.Errorf("shut down backend gRPC server: %w", ctx.Err()))
	}
	b.serveDone.Wait()
	b.log.Info("backend stopped", "name", b.name)
	return errors.Join(errs...)
}

// Name returns the name sent in responses; before Start it is Config.Name.
func (b *Backend) Name() string {
	if b.name == "" {
		return b.cfg.Name
	}
	return b.name
}

// HTTPAddr returns the bound HTTP address, or "" before Start.
func (b *Backend) HTTPAddr() string {
	if b.httpLn == nil {
		return ""
	}
	return b.httpLn.Addr().String()
}

// GRPCAddr returns the bound gRPC address, or "" without a gRPC port.
func (b *Backend) GRPCAddr() string {
	if b.grpcLn == nil {
		return ""
	}
	return b.grpcLn.Addr().String()
}

// Started returns when Start bound the ports: the origin of stall windows.
func (b *Backend) Started() time.Time { return b.start }

// Personality returns the current personality.
func (b *Backend) Personality() Personality { return b.cur.Load().Personality }

// SetPersonality validates p and makes it the personality of requests
// that start from now on.
func (b *Backend) SetPersonality(p Personality) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("set backend personality: %w", err)
	}
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	b.cur.Store(newState(p))
	return nil
}

// draw samples the delay of a request arriving at now and whether it fails.
func (b *Backend) draw(st *state, now time.Time) (time.Duration, bool) {
	b.rngMu.Lock()
	defer b.rngMu.Unlock()
	d := st.Latency.Delay(now, b.start, b.rng)
	fail := st.ErrorRate > 0 && b.rng.Float64() < st.ErrorRate
	return d, fail
}

// behave applies st to one response of a request that arrived at arrival:
// it waits for the drawn delay, or until ctx is done, and reports whether
// the response is to be an injected error.
func (b *Backend) behave(ctx context.Context, st *state, arrival time.Time) (fail bool, err error) {
	if st.slots != nil {
		// Goroutines blocked on a channel send are woken in order: the
		// queue is first come, first served.
		select {
		case st.slots <- struct{}{}:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		defer func() { <-st.slots }()
		arrival = time.Now()
	}
	d, fail := b.draw(st, arrival)
	if err := b.waitUntil(ctx, arrival.Add(d)); err != nil {
		return false, err
	}
	return fail, nil
}

// waitUntil waits until t, or returns ctx's error when ctx ends first.
func (b *Backend) waitUntil(ctx context.Context, t time.Time) error {
	return pace.Until(ctx, t, b.cfg.Spin, nil)
}

// responseSize picks the requested size, or the configured one when the
// request asks for 0.
func responseSize(requested int32, st *state) (int, error) {
	switch {
	case requested < 0 || requested > MaxResponseSize:
		return 0, fmt.Errorf("response size %d: want 0..%d bytes", requested, MaxResponseSize)
	case requested == 0:
		return st.ResponseSize, nil
	}
	return int(requested), nil
}

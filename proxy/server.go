package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/identity"
	"github.com/meshbench/meshbench/proxy/metrics"
	"github.com/meshbench/meshbench/proxy/pathnorm"
	"github.com/meshbench/meshbench/proxy/route"
)

// Server is a running proxy: its listeners, clusters and admin server.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	metrics  *metrics.Metrics
	clusters map[string]*cluster

	listeners []*listener
	admin     *http.Server
	adminAddr net.Addr

	// stopDiscovery ends the clusters' discovery sources at Shutdown.
	stopDiscovery context.CancelFunc

	// sources are the certificate files of listeners and clusters with
	// tls, by file set; idm their series (see mtls.go).
	sources map[string]*identity.Source
	idm     *metrics.Identity

	draining atomic.Bool
	started  atomic.Bool
	wg       sync.WaitGroup
}

type listener struct {
	cfg   *config.Listener
	srv   *http.Server
	ln    net.Listener
	tls   bool
	table *route.Table
	// tlsCfg and hs terminate and count TLS on a listener with tls.
	tlsCfg *tls.Config
	hs     metrics.Handshakes
}

// New builds a proxy from a validated configuration. Nothing listens until
// Start.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, metrics: metrics.New(), clusters: map[string]*cluster{}, stopDiscovery: func() {}}
	s.sources = map[string]*identity.Source{}
	s.idm = metrics.NewIdentity(s.metrics, s.certStates)
	for i := range cfg.Clusters {
		c, err := newCluster(&cfg.Clusters[i], log, cfg.DiscoveryServer)
		if err != nil {
			return nil, err
		}
		if err := s.clusterTLS(c, &cfg.Clusters[i]); err != nil {
			return nil, err
		}
		s.clusters[c.name] = c
	}
	s.metrics.WatchClusters(s.clusterStates)
	for i := range cfg.Listeners {
		l, err := s.newListener(&cfg.Listeners[i])
		if err != nil {
			return nil, err
		}
		s.listeners = append(s.listeners, l)
	}
	if cfg.Admin != "" {
		s.admin = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	}
	return s, nil
}

func (s *Server) newListener(lc *config.Listener) (*listener, error) {
	table, err := route.Compile(lc.Routes)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	h := &handler{
		log:       s.log.With("listener", lc.Name),
		direction: lc.Direction,
		table:     table,
		routes:    make([]*routeState, len(lc.Routes)),
		noRoute:   s.metrics.Route(lc.Direction, "", ""),
		tls:       lc.TLS != nil,
		authz:     s.newAuthz(lc),
		bodyIdle:  lc.Limits.BodyIdleTimeout.D(),
	}
	if lc.EscapedSlashes == config.SlashesUnescape {
		h.slashes = pathnorm.Unescape
	}
	for i := range lc.Routes {
		rc := &lc.Routes[i]
		h.routes[i] = newRouteState(rc, s.clusters[rc.Cluster], s.metrics.Route(lc.Direction, rc.Name, rc.Cluster))
		h.routes[i].pools = s.clusters[rc.Cluster].poolsFor(lc.SourceService)
	}
	lim := lc.Limits
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout.D(),
		IdleTimeout:       lim.IdleTimeout.D(),
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		// HTTP/2 takes its header list limit (SETTINGS_MAX_HEADER_LIST_SIZE)
		// from MaxHeaderBytes and its idle timeout from IdleTimeout.
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          lim.MaxConcurrentStreams,
			MaxDecoderHeaderTableSize:     h2HeaderTableSize,
			MaxReadFrameSize:              h2MaxReadFrameSize,
			MaxReceiveBufferPerStream:     1 << 20,
			MaxReceiveBufferPerConnection: 4 << 20,
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// TLS is terminated by the listener (see tlsListener), so net/http
	// serves every connection as cleartext: HTTP/2 over TLS reaches it as
	// h2 with prior knowledge once ALPN chose h2.
	var p http.Protocols
	switch lc.Protocol {
	case config.ProtoHTTP1:
		p.SetHTTP1(true)
	case config.ProtoH2C:
		p.SetUnencryptedHTTP2(true)
	default: // auto, or h2 over TLS: HTTP/1.1 and HTTP/2 on one port
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &p
	l := &listener{cfg: lc, srv: srv, tls: lc.TLS != nil, table: table}
	if lc.TLS != nil {
		var err error
		if l.tlsCfg, l.hs, err = s.listenerTLS(lc); err != nil {
			return nil, err
		}
		srv.ConnContext = withTLSState
	}
	return l, nil
}

// Start binds every listener and the admin address and starts serving. It
// returns once all are bound, or the first bind error (after closing what
// was bound).
func (s *Server) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("proxy already started")
	}
	var lc net.ListenConfig
	var bound []net.Listener
	fail := func(err error) error {
		for _, ln := range bound {
			ln.Close()
		}
		return err
	}
	for _, l := range s.listeners {
		ln, err := lc.Listen(ctx, "tcp", l.cfg.Address)
		if err != nil {
			return fail(fmt.Errorf("listener %s: binding %s: %w", l.cfg.Name, l.cfg.Address, err))
		}
		bound = append(bound, ln)
		lm := s.metrics.Listener(l.cfg.Direction, l.cfg.Name)
		limited := newSourceLimitListener(limitListener(ln, l.cfg.Limits.MaxConnections), l.cfg.Limits.MaxConnectionsPerSource, lm.Refused.Inc)
		l.ln = &countingListener{Listener: limited, m: lm}
		if l.tls {
			l.ln = newTLSListener(l.ln, l.tlsCfg, l.cfg.Limits.ReadHeaderTimeout.D(), l.hs)
		}
		l.ln = guard(l.ln, l.cfg)
		if l.cfg.Protocol != config.ProtoHTTP1 {
			l.ln = &h2WatchListener{Listener: l.ln, maxHeaderList: l.cfg.Limits.MaxHeaderBytes, m: lm}
		}
	}
	if s.admin != nil {
		ln, err := lc.Listen(ctx, "tcp", s.cfg.Admin)
		if err != nil {
			return fail(fmt.Errorf("admin: binding %s: %w", s.cfg.Admin, err))
		}
		s.adminAddr = ln.Addr()
		s.serve("admin", func() error { return s.admin.Serve(ln) })
	}
	dctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopDiscovery = stop
	for _, c := range s.clusters {
		if c.source != nil {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				c.run(dctx)
			}()
		}
	}
	s.runSources(dctx)
	for _, l := range s.listeners {
		l := l
		s.serve(l.cfg.Name, func() error { return l.srv.Serve(l.ln) })
		s.log.Info("listening", "listener", l.cfg.Name, "address", l.ln.Addr().String(),
			"direction", l.cfg.Direction, "protocol", l.cfg.Protocol, "tls", l.tls)
	}
	return nil
}

func (s *Server) serve(name string, f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serving stopped", "listener", name, "err", err)
		}
	}()
}

// clusterStates reports every cluster's per-endpoint series, in name order.
func (s *Server) clusterStates() []metrics.ClusterState {
	names := slices.Sorted(maps.Keys(s.clusters))
	out := make([]metrics.ClusterState, len(names))
	for i, n := range names {
		out[i] = s.clusters[n].metricsState()
	}
	return out
}

// Addr returns the bound address of the named listener (useful with port
// 0), or nil.
func (s *Server) Addr(name string) net.Addr {
	for _, l := range s.listeners {
		if l.cfg.Name == name && l.ln != nil {
			return l.ln.Addr()
		}
	}
	return nil
}

// AdminAddr returns the bound admin address, or nil.
func (s *Server) AdminAddr() net.Addr { return s.adminAddr }

// Metrics returns the proxy's series.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Shutdown drains the proxy: /ready turns to 503, listeners stop accepting
// and idle connections close (HTTP/2 connections get a GOAWAY); requests in
// flight continue until they finish or ctx is done, when every remaining
// connection is closed. The admin server stops last. It returns ctx's error
// if the grace period ran out.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	var wg sync.WaitGroup
	var expired atomic.Bool
	for _, l := range s.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Shutdown(ctx); err != nil {
				expired.Store(true)
				l.srv.Close()
			}
		}()
	}
	wg.Wait()
	s.stopDiscovery()
	for _, c := range s.clusters {
		c.closeIdle()
	}
	if s.admin != nil {
		s.admin.Close()
	}
	s.wg.Wait()
	if expired.Load() {
		return fmt.Errorf("draining: grace period ended with requests in flight: %w", ctx.Err())
	}
	return nil
}

// Run starts the proxy, serves until ctx is done, then drains for the
// configured drain timeout.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	grace := s.cfg.DrainTimeout.D()
	s.log.Info("draining", "grace", grace)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	return s.Shutdown(dctx)
}

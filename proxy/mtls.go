package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/h1client"
	"github.com/meshbench/meshbench/proxy/identity"
	"github.com/meshbench/meshbench/proxy/metrics"
)

// source returns the Source of cfg's files, creating it on first use:
// files shared by several listeners and clusters are watched once. The
// proxy's sources are created by New and read-only afterwards.
func (s *Server) source(cfg identity.SourceConfig) (*identity.Source, error) {
	key := cfg.CertFile + "\x00" + cfg.KeyFile + "\x00" + cfg.CAFile
	if src := s.sources[key]; src != nil {
		return src, nil
	}
	cfg.Log = s.log
	src, err := identity.NewSource(cfg)
	if err != nil {
		return nil, err
	}
	s.sources[key] = src
	return src, nil
}

// certStates reports the expiry of every certificate the proxy holds.
func (s *Server) certStates() []metrics.CertState {
	var out []metrics.CertState
	for _, k := range slices.Sorted(maps.Keys(s.sources)) {
		src := s.sources[k]
		if src.Certificate() != nil {
			out = append(out, metrics.CertState{Name: src.Name(), NotAfter: src.NotAfter()})
		}
	}
	return out
}

// runSources follows the certificate files until ctx ends.
func (s *Server) runSources(ctx context.Context) {
	for _, src := range s.sources {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			src.Run(ctx)
		}()
	}
}

// listenerTLS configures TLS on a listener's server: the certificate (and,
// with client_ca_file, the trust bundle client certificates are verified
// against) come from a reloading Source, so a rotated certificate is used
// by the next handshake while established connections carry on.
// Handshakes are counted: successes when the connection is verified,
// failures when a handshake fails or times out (see tlsListener). ALPN
// offers h2 unless the listener serves HTTP/1.1 only.
func (s *Server) listenerTLS(lc *config.Listener) (*tls.Config, metrics.Handshakes, error) {
	t := lc.TLS
	src, err := s.source(identity.SourceConfig{CertFile: t.CertFile, KeyFile: t.KeyFile,
		CAFile: t.ClientCAFile, Interval: t.ReloadInterval.D()})
	if err != nil {
		return nil, metrics.Handshakes{}, fmt.Errorf("listener %s: loading TLS certificate: %w", lc.Name, err)
	}
	hs := s.idm.ListenerHandshakes(lc.Name)
	cfg := &tls.Config{
		GetCertificate: src.GetCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		VerifyConnection: func(tls.ConnectionState) error {
			hs.Success.Inc()
			return nil
		},
	}
	if t.MinVersion == config.TLSVersion13 {
		cfg.MinVersion = tls.VersionTLS13
	}
	if t.MTLS() {
		// The chain is verified by the Source against the current bundle
		// (the standard verification would need a fixed pool); a
		// certificate that fails it fails the handshake, so every peer
		// certificate a request sees was verified.
		cfg.ClientAuth = tls.RequestClientCert
		if t.RequireClientCert != nil && *t.RequireClientCert {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		cfg.VerifyPeerCertificate = src.VerifyClient()
	}
	if lc.Protocol == config.ProtoHTTP1 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	return cfg, hs, nil
}

// authz is a listener's authorization: its policy and decision counters.
type authz struct {
	policy      *identity.Policy
	allow, deny prometheus.Counter
}

// authorize applies the listener's policy to r, the caller being the
// SPIFFE ID of its verified client certificate. A denied request is
// answered 403 (gRPC PERMISSION_DENIED) and recorded on the route it
// matched (index i, or none); authorize then returns false.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request, i int, isGRPC bool, start time.Time) bool {
	id := identity.PeerID(r.TLS)
	if h.authz.policy.Allow(id, r.Method, r.URL.Path) {
		h.authz.allow.Inc()
		return true
	}
	h.authz.deny.Inc()
	m := h.noRoute
	if i >= 0 {
		m = h.routes[i].m
	}
	m.Request()
	h.log.Debug("request denied by authz", "identity", id.String(), "method", r.Method, "path", r.URL.Path)
	st, gs := writeError(w, r, isGRPC, http.StatusForbidden, grpcPermissionDenied, "permission denied")
	m.Response(st, gs, time.Since(start))
	return false
}

// newAuthz compiles a listener's authz block.
func (s *Server) newAuthz(lc *config.Listener) *authz {
	if lc.Authz == nil {
		return nil
	}
	allow, deny := s.idm.Authz(lc.Name)
	return &authz{policy: lc.Authz.Policy(), allow: allow, deny: deny}
}

// upstreamTLS dials a cluster's endpoints over mTLS: it verifies that the
// server's certificate chains to the trust bundle and carries the SPIFFE
// ID expected for the address dialed (not its host name), and presents a
// client certificate.
type upstreamTLS struct {
	ca         *identity.Source
	ids        map[string]identity.ID
	def        identity.ID
	hs         metrics.Handshakes
	dialer     *net.Dialer
	connectTTL time.Duration
}

// dial returns a dial function that presents cert and offers alpn.
// Handshake failures are reported as dial errors, so they count as connect
// failures (503, retried under connect-failure).
func (u *upstreamTLS) dial(cert *identity.Source, alpn string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		want, ok := u.ids[addr]
		if !ok {
			want = u.def
		}
		if want.IsZero() {
			u.hs.Failure.Inc()
			return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("no expected identity for %s", addr)}
		}
		ctx, cancel := context.WithTimeout(ctx, u.connectTTL)
		defer cancel()
		raw, err := u.dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{
			// Host-name verification is replaced by VerifyPeerCertificate:
			// the chain to the trust bundle and the SPIFFE ID.
			InsecureSkipVerify:    true,
			VerifyPeerCertificate: u.ca.VerifyServer(want),
			GetClientCertificate:  cert.GetClientCertificate,
			NextProtos:            []string{alpn},
			MinVersion:            tls.VersionTLS13,
		}
		if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) == nil {
			cfg.ServerName = host
		}
		if alpn == "h2" {
			// TLS records of an HTTP/2 connection leave together (the
			// coalescer sits under TLS, so the Transport still finds the
			// *tls.Conn it reads ALPN from).
			raw = newCoalescer(raw)
		}
		tc := tls.Client(raw, cfg)
		err = tc.HandshakeContext(ctx)
		if err == nil && alpn == "h2" && tc.ConnectionState().NegotiatedProtocol != "h2" {
			err = errors.New("server did not negotiate h2")
		}
		if err != nil {
			raw.Close()
			u.hs.Failure.Inc()
			return nil, &net.OpError{Op: "dial", Net: network, Addr: raw.RemoteAddr(), Err: fmt.Errorf("TLS handshake: %w", err)}
		}
		u.hs.Success.Inc()
		return tc, nil
	}
}

// clusterTLS replaces a cluster's cleartext pools by mTLS ones when its
// configuration has tls: one pair of pools per client certificate, since
// a connection carries the identity it was opened with.
func (s *Server) clusterTLS(c *cluster, cc *config.Cluster) error {
	t := cc.TLS
	if t == nil {
		return nil
	}
	every := t.ReloadInterval.D()
	ca, err := s.source(identity.SourceConfig{CAFile: t.CAFile, Interval: every})
	if err != nil {
		return fmt.Errorf("cluster %s: loading the trust bundle: %w", cc.Name, err)
	}
	u := &upstreamTLS{ca: ca, ids: map[string]identity.ID{}, hs: s.idm.ClusterHandshakes(cc.Name),
		dialer: &net.Dialer{Timeout: cc.ConnectTimeout.D(), KeepAlive: 30 * time.Second}, connectTTL: cc.ConnectTimeout.D()}
	if t.ServerIdentity != "" {
		if u.def, err = identity.ParseID(t.ServerIdentity); err != nil {
			return fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
	}
	for addr, v := range t.ServerIdentities {
		id, err := identity.ParseID(v)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
		u.ids[addr] = id
	}
	build := func(pair config.CertPair) (*pools, error) {
		cert, err := s.source(identity.SourceConfig{CertFile: pair.CertFile, KeyFile: pair.KeyFile, Interval: every})
		if err != nil {
			return nil, fmt.Errorf("cluster %s: loading client certificate: %w", cc.Name, err)
		}
		p := &pools{}
		if cc.Protocol == config.UpstreamHTTP1 || cc.Protocol == config.UpstreamSame {
			p.h1 = h1client.New(h1client.Options{
				Dial:            u.dial(cert, "http/1.1"),
				MaxIdlePerHost:  cc.Pool.MaxIdlePerEndpoint,
				MaxConnsPerHost: cc.Pool.MaxConnsPerEndpoint,
				IdleTimeout:     cc.Pool.IdleTimeout.D(),
			})
		}
		if cc.Protocol == config.UpstreamH2 || cc.Protocol == config.UpstreamSame {
			tr := newH2CTransport(cc)
			tr.DialTLSContext = u.dial(cert, "h2")
			var proto http.Protocols
			proto.SetHTTP2(true)
			tr.Protocols = &proto
			tr.ForceAttemptHTTP2 = true
			p.h2 = tr
		}
		return p, nil
	}
	c.scheme = "https"
	if t.GatewaysOnly {
		// The cleartext pools built with the cluster stay for endpoints
		// without a gateway (h2c where the cluster says h2).
		c.plain = &pools{h1: c.h1, h2: c.h2c}
	}
	if len(t.Certs) == 0 {
		p, err := build(config.CertPair{CertFile: t.CertFile, KeyFile: t.KeyFile})
		if err != nil {
			return err
		}
		c.h1, c.h2c = p.h1, p.h2
		return nil
	}
	c.h1, c.h2c = nil, nil
	c.bySource = map[string]*pools{}
	for svc, pair := range t.Certs {
		p, err := build(pair)
		if err != nil {
			return err
		}
		c.bySource[svc] = p
	}
	return nil
}

package security

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/identity"
)

// Checks returns the profile's checks.
func Checks() []conformance.Check {
	const valid = "An inbound TLS listener with client_ca_file (mTLS) forwards to a cleartext backend. A client presenting a valid certificate of the trust domain is answered 200 first (a proxy that refuses everyone fails). "
	const refused = " is refused: its TLS handshake or its request fails, or it is answered 4xx, and the backend sees no request. "
	return []conformance.Check{
		{
			ID:      "security/mtls-rejects-no-cert",
			Title:   "mTLS listener refuses a client without a certificate",
			Asserts: valid + "Then a client presenting no certificate" + refused + "Without a client certificate there is no identity: a mesh listener that let such a client in would serve anyone who can reach its port.",
			Needs:   []string{peers.CapMTLS},
			Run:     func(e *conformance.Env) error { return rejects(e, "no certificate", noCert) },
		},
		{
			ID:      "security/mtls-rejects-other-ca",
			Title:   "mTLS listener refuses a certificate of another CA",
			Asserts: valid + "Then a client presenting a certificate with the same SPIFFE ID issued by another CA (its own root, same trust domain name)" + refused + "Only the trust bundle vouches for identities; anyone can make a CA that writes any SPIFFE ID.",
			Needs:   []string{peers.CapMTLS},
			Run:     func(e *conformance.Env) error { return rejects(e, "a certificate of another CA", otherCA) },
		},
		{
			ID:      "security/mtls-rejects-expired",
			Title:   "mTLS listener refuses an expired certificate",
			Asserts: valid + "Then a client presenting a certificate of the trust domain that expired an hour ago" + refused + "Short certificate lifetimes are how a mesh revokes a workload's identity; honouring an expired one undoes that.",
			Needs:   []string{peers.CapMTLS},
			Run:     func(e *conformance.Env) error { return rejects(e, "an expired certificate", expired) },
		},
		{
			ID:    "security/mtls-rejects-wrong-san",
			Title: "Upstream presenting another SPIFFE ID refused",
			Asserts: "The proxy as a client: two clusters with tls (ca_file the trust bundle, server_identity " + id("expected") + ", a client certificate) reach two TLS backends whose certificates chain to the bundle. " +
				"A request to the one presenting " + id("expected") + " is answered 200; a request to the one presenting " + id("impostor") + " is answered 502 or 503 (or its connection fails), and that backend sees no request. " +
				"In a mesh any workload holds a certificate of the trust domain; only the SPIFFE ID tells the service that was meant from another one answering at its address.",
			Needs: []string{peers.CapMTLS},
			Run:   wrongSAN,
		},
		{
			ID:    "security/authz-per-service",
			Title: "Authorization admits callers by SPIFFE identity",
			Asserts: "An mTLS listener whose authz allows only " + id("frontend") + ": a client presenting the frontend certificate is answered 200; a client presenting another service's certificate of the same trust domain (" + id("other") + ") is answered 403 and the backend sees no request. " +
				"Authentication alone admits every workload of the mesh; authorization limits a service to its callers.",
			Needs: []string{peers.CapMTLS},
			Run:   authzPerService,
		},
		{
			ID:    "security/source-vs-destination-cert",
			Title: "Cluster presents the source or the destination service's certificate",
			Asserts: "A TLS backend that requires and verifies client certificates records the caller's SPIFFE ID. Through a cluster with tls mode source holding a certificate per source service, " +
				"requests from the listener with source_service frontend reach it as " + id("frontend") + " and those from the listener with source_service other as " + id("other") + "; " +
				"through a cluster with mode destination (the destination service's certificate) they reach it as " + id("backend") + ". " +
				"Which identity a proxy presents decides what the receiving side's authorization can tell apart: the caller (source) or only mesh membership (destination).",
			Needs: []string{peers.CapMTLS},
			Run:   sourceVsDestination,
		},
		{
			ID:    "security/rotation-under-load",
			Title: "Server certificate rotated under load without a failed request",
			Asserts: fmt.Sprintf("An mTLS listener with reload_interval %v; %d clients send requests for %v (%v apart), each opening a new connection every %d requests. "+
				"At %v the listener's certificate and key files are replaced (atomically, key first) with a newly issued certificate. "+
				"Asserted: no request fails, requests before the swap see the old certificate's serial, and new connections see the new serial within the run. "+
				"Mesh certificates live hours; a proxy that needs a restart, or drops requests, to take a new one turns every rotation into an outage.",
				rotReload, rotWorkers, rotRun, rotPace, rotPerConn, rotSwap),
			Needs: []string{peers.CapMTLS},
			Run:   rotation,
		},
	}
}

// inbound starts a plain backend and a proxy whose mTLS listener (the
// server certificate of serverService) forwards to it, with authz when
// given; it returns the backend and the listener's address.
func inbound(e *conformance.Env, p *pki, authz *config.Authz, reload time.Duration) (*conformance.Backend, string, *config.TLS, error) {
	be, err := e.StartBackend(conformance.BackendOptions{Name: "be-app"})
	if err != nil {
		return nil, "", nil, err
	}
	certFile, keyFile, err := p.files(serverService)
	if err != nil {
		return nil, "", nil, err
	}
	listen, err := e.Addr()
	if err != nil {
		return nil, "", nil, err
	}
	t := &config.TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: p.bundle, ReloadInterval: config.Duration(reload)}
	cfg := &config.Config{
		Listeners: []config.Listener{{Name: "inbound", Address: listen, Direction: config.Inbound, Protocol: config.ProtoAuto, TLS: t, Authz: authz,
			Routes: []config.Route{{Name: "app", Match: config.Match{PathPrefix: "/"}, Cluster: "app", Timeout: config.Duration(5 * time.Second)}}}},
		Clusters: []config.Cluster{{Name: "app", Protocol: config.UpstreamHTTP1, Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: []string{be.Addr}}},
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return nil, "", nil, err
	}
	return be, listen, t, nil
}

// result is what one request got.
type result struct {
	status int
	err    error
	tls    *tls.ConnectionState
}

func (r result) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("status %d", r.status)
}

func do(ctx context.Context, c *http.Client, url string) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return result{err: err}
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return result{status: resp.StatusCode, err: err, tls: resp.TLS}
}

// admitted requires that a client with the frontend certificate gets 200
// from the listener and that its request reached the backend.
func admitted(e *conformance.Env, p *pki, be *conformance.Backend, listen string) error {
	good, err := p.cert("frontend", time.Time{}, 0)
	if err != nil {
		return err
	}
	r := do(e.Context(), client(e, p.roots, good), "https://"+listen+"/")
	if r.err != nil || r.status != http.StatusOK {
		return fmt.Errorf("a client presenting a valid certificate (%s) got %s, want 200", id("frontend"), r)
	}
	if n := be.Count(); n != 1 {
		return fmt.Errorf("a valid client's request reached the backend %d times, want once", n)
	}
	be.Clear()
	return nil
}

// A badCert makes the certificate a refused client presents (nil: none).
type badCert func(e *conformance.Env, p *pki) (*tls.Certificate, error)

func noCert(*conformance.Env, *pki) (*tls.Certificate, error) { return nil, nil }

func otherCA(e *conformance.Env, _ *pki) (*tls.Certificate, error) {
	other, err := newPKI(e)
	if err != nil {
		return nil, err
	}
	return other.cert("frontend", time.Time{}, 0)
}

func expired(_ *conformance.Env, p *pki) (*tls.Certificate, error) {
	return p.cert("frontend", time.Now().Add(-2*time.Hour), time.Hour)
}

// rejects runs an mTLS refusal check: a valid client is admitted, then
// one presenting what bad makes is refused.
func rejects(e *conformance.Env, what string, bad badCert) error {
	p, err := newPKI(e)
	if err != nil {
		return err
	}
	be, listen, _, err := inbound(e, p, nil, 0)
	if err != nil {
		return err
	}
	if err := admitted(e, p, be, listen); err != nil {
		return err
	}
	cert, err := bad(e, p)
	if err != nil {
		return err
	}
	r := do(e.Context(), client(e, p.roots, cert), "https://"+listen+"/")
	if err := e.Context().Err(); err != nil {
		return err
	}
	switch {
	case r.err == nil && (r.status < 400 || r.status > 499):
		return fmt.Errorf("a client presenting %s got %s, want a failed handshake or a 4xx (the backend saw %d requests)", what, r, be.Count())
	case be.Count() > 0:
		return fmt.Errorf("a client presenting %s got %s, but its request reached the backend (%d requests)", what, r, be.Count())
	}
	e.Log().Info("client refused", "presenting", what, "got", r.String())
	return nil
}

func wrongSAN(e *conformance.Env) error {
	p, err := newPKI(e)
	if err != nil {
		return err
	}
	var bes []*conformance.Backend
	for _, svc := range []string{"expected", "impostor"} {
		cert, err := p.cert(svc, time.Time{}, 0)
		if err != nil {
			return err
		}
		be, err := e.StartBackend(conformance.BackendOptions{Name: "be-" + svc,
			TLS: &tls.Config{Certificates: []tls.Certificate{*cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.roots, MinVersion: tls.VersionTLS12}})
		if err != nil {
			return err
		}
		bes = append(bes, be)
	}
	certFile, keyFile, err := p.files("frontend")
	if err != nil {
		return err
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	cfg := &config.Config{Listeners: []config.Listener{{Name: "outbound", Address: listen, Protocol: config.ProtoHTTP1}}}
	for i, name := range []string{"right", "wrong"} {
		cfg.Listeners[0].Routes = append(cfg.Listeners[0].Routes, config.Route{Name: name, Match: config.Match{PathPrefix: "/" + name}, Cluster: name, Timeout: config.Duration(5 * time.Second)})
		cfg.Clusters = append(cfg.Clusters, config.Cluster{Name: name, Protocol: config.UpstreamHTTP1, Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: []string{bes[i].Addr},
			TLS: &config.UpstreamTLS{Mode: config.TLSModeSource, CAFile: p.bundle, ServerIdentity: id("expected"), CertFile: certFile, KeyFile: keyFile}})
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return err
	}
	c := plainClient(e)
	if r := do(e.Context(), c, "http://"+listen+"/right"); r.err != nil || r.status != http.StatusOK || bes[0].Count() != 1 {
		return fmt.Errorf("a request to the upstream presenting the expected %s got %s and reached it %d times, want 200 and once", id("expected"), r, bes[0].Count())
	}
	r := do(e.Context(), c, "http://"+listen+"/wrong")
	if err := e.Context().Err(); err != nil {
		return err
	}
	switch {
	case r.err == nil && r.status != http.StatusBadGateway && r.status != http.StatusServiceUnavailable:
		return fmt.Errorf("a request to the upstream presenting %s instead of the expected %s got %s, want 502 or 503 (the upstream saw %d requests)", id("impostor"), id("expected"), r, bes[1].Count())
	case bes[1].Count() > 0:
		return fmt.Errorf("a request to the upstream presenting %s instead of the expected %s reached it (%d requests; the client got %s)", id("impostor"), id("expected"), bes[1].Count(), r)
	}
	e.Log().Info("upstream refused", "presenting", id("impostor"), "got", r.String())
	return nil
}

func authzPerService(e *conformance.Env) error {
	p, err := newPKI(e)
	if err != nil {
		return err
	}
	be, listen, _, err := inbound(e, p, &config.Authz{Allow: []config.AuthzRule{{Identities: []string{id("frontend")}}}}, 0)
	if err != nil {
		return err
	}
	if err := admitted(e, p, be, listen); err != nil {
		return err
	}
	other, err := p.cert("other", time.Time{}, 0)
	if err != nil {
		return err
	}
	r := do(e.Context(), client(e, p.roots, other), "https://"+listen+"/")
	if err := e.Context().Err(); err != nil {
		return err
	}
	switch {
	case r.err != nil || r.status != http.StatusForbidden:
		return fmt.Errorf("a client presenting %s, which authz does not allow, got %s, want 403 (the backend saw %d requests)", id("other"), r, be.Count())
	case be.Count() > 0:
		return fmt.Errorf("a client presenting %s, which authz does not allow, got 403 but its request reached the backend (%d requests)", id("other"), be.Count())
	}
	return nil
}

func sourceVsDestination(e *conformance.Env) error {
	p, err := newPKI(e)
	if err != nil {
		return err
	}
	beCert, err := p.cert("backend", time.Time{}, 0)
	if err != nil {
		return err
	}
	be, err := e.StartBackend(conformance.BackendOptions{Name: "be-backend",
		TLS: &tls.Config{Certificates: []tls.Certificate{*beCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.roots, MinVersion: tls.VersionTLS12}})
	if err != nil {
		return err
	}
	pairs := map[string]config.CertPair{}
	for _, svc := range []string{"frontend", "other", "backend"} {
		cf, kf, err := p.files(svc)
		if err != nil {
			return err
		}
		pairs[svc] = config.CertPair{CertFile: cf, KeyFile: kf}
	}
	cases := []struct{ listener, source, cluster, want string }{
		{"from-frontend", "frontend", "source", id("frontend")},
		{"from-other", "other", "source", id("other")},
		{"to-destination", "", "destination", id("backend")},
	}
	cfg := &config.Config{Clusters: []config.Cluster{
		{Name: "source", Protocol: config.UpstreamHTTP1, Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: []string{be.Addr},
			TLS: &config.UpstreamTLS{Mode: config.TLSModeSource, CAFile: p.bundle, ServerIdentity: id("backend"),
				Certs: map[string]config.CertPair{"frontend": pairs["frontend"], "other": pairs["other"]}}},
		{Name: "destination", Protocol: config.UpstreamHTTP1, Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: []string{be.Addr},
			TLS: &config.UpstreamTLS{Mode: config.TLSModeDestination, CAFile: p.bundle, ServerIdentity: id("backend"),
				CertFile: pairs["backend"].CertFile, KeyFile: pairs["backend"].KeyFile}},
	}}
	var addrs []string
	for _, tc := range cases {
		listen, err := e.Addr()
		if err != nil {
			return err
		}
		addrs = append(addrs, listen)
		cfg.Listeners = append(cfg.Listeners, config.Listener{Name: tc.listener, Address: listen, Protocol: config.ProtoHTTP1, SourceService: tc.source,
			Routes: []config.Route{{Name: tc.listener, Match: config.Match{PathPrefix: "/"}, Cluster: tc.cluster, Timeout: config.Duration(5 * time.Second)}}})
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return err
	}
	c := plainClient(e)
	var problems []string
	for i, tc := range cases {
		be.Clear()
		r := do(e.Context(), c, "http://"+addrs[i]+"/")
		if err := e.Context().Err(); err != nil {
			return err
		}
		reqs := be.Requests()
		switch {
		case r.err != nil || r.status != http.StatusOK:
			problems = append(problems, fmt.Sprintf("listener %s (cluster %s, mode %s): %s, want 200", tc.listener, tc.cluster, tc.cluster, r))
		case len(reqs) != 1:
			problems = append(problems, fmt.Sprintf("listener %s: the backend saw %d requests, want 1", tc.listener, len(reqs)))
		case reqs[0].PeerID != tc.want:
			problems = append(problems, fmt.Sprintf("listener %s (cluster %s, mode %s): the backend saw the client identity %q, want %s", tc.listener, tc.cluster, tc.cluster, reqs[0].PeerID, tc.want))
		}
	}
	return conformance.Problems(problems)
}

// The rotation check's parameters.
const (
	rotReload  = 100 * time.Millisecond
	rotWorkers = 2
	rotRun     = 2 * time.Second
	rotSwap    = 600 * time.Millisecond
	rotPerConn = 4
	// rotPace spaces a client's requests, to keep the load moderate.
	rotPace = 5 * time.Millisecond
	// rotMaxRequests bounds a run on a fast machine.
	rotMaxRequests = 20000
)

func rotation(e *conformance.Env) error {
	p, err := newPKI(e)
	if err != nil {
		return err
	}
	_, listen, t, err := inbound(e, p, nil, rotReload)
	if err != nil {
		return err
	}
	good, err := p.cert("frontend", time.Time{}, 0)
	if err != nil {
		return err
	}
	type seen struct {
		at     time.Time
		serial string
		err    error
	}
	results := make(chan []seen, rotWorkers)
	start := time.Now()
	end := start.Add(rotRun)
	ctx := e.Context()
	for range rotWorkers {
		go func() {
			var out []seen
			defer func() { results <- out }()
			for time.Now().Before(end) && ctx.Err() == nil && len(out) < rotMaxRequests/rotWorkers {
				c := newClient(p.roots, good)
				for range rotPerConn {
					r := do(ctx, c, "https://"+listen+"/")
					s := seen{at: time.Now(), err: r.err}
					switch {
					case r.err != nil:
					case r.status != http.StatusOK:
						s.err = fmt.Errorf("status %d", r.status)
					case r.tls == nil || len(r.tls.PeerCertificates) == 0:
						s.err = fmt.Errorf("no server certificate")
					default:
						s.serial = r.tls.PeerCertificates[0].SerialNumber.String()
					}
					out = append(out, s)
					time.Sleep(rotPace)
				}
				c.CloseIdleConnections()
			}
		}()
	}
	time.Sleep(time.Until(start.Add(rotSwap)))
	leaf, err := p.ca.Issue(identity.LeafOptions{ID: identity.ServiceID(trustDomain, namespace, serverService), DNSNames: []string{serverService}})
	var swapErr error
	if err == nil {
		err = identity.WriteLeaf(leaf, t.CertFile, t.KeyFile)
	}
	swapped := time.Now()
	if err != nil {
		swapErr = fmt.Errorf("replacing the server certificate: %w", err)
	}
	var all []seen
	for range rotWorkers {
		all = append(all, <-results...)
	}
	if swapErr != nil {
		return swapErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	newSerial := leaf.Cert.SerialNumber.String()
	var failures, before int
	var firstErr error
	var firstNew time.Time
	for _, s := range all {
		if s.err != nil {
			failures++
			if firstErr == nil {
				firstErr = s.err
			}
			continue
		}
		if s.serial == newSerial {
			if firstNew.IsZero() || s.at.Before(firstNew) {
				firstNew = s.at
			}
		} else if s.at.Before(swapped) {
			before++
		}
	}
	e.Figure("requests", float64(len(all)), "")
	e.Figure("failures", float64(failures), "")
	if !firstNew.IsZero() {
		e.Figure("time_to_new_cert", ms(firstNew.Sub(swapped)), "ms")
	}
	var problems []string
	if failures > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d requests failed (first: %v)", failures, len(all), firstErr))
	}
	if before == 0 {
		problems = append(problems, "no request before the swap saw the first certificate")
	}
	if firstNew.IsZero() {
		problems = append(problems, fmt.Sprintf("no connection saw the new certificate in the %v after the swap (reload_interval %v; %d requests, a new connection every %d)",
			end.Sub(swapped).Round(time.Millisecond), rotReload, len(all), rotPerConn))
	}
	return conformance.Problems(problems)
}

// ms is a duration in milliseconds, for figures.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

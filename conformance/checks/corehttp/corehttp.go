package corehttp

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
)

// Checks returns the profile's checks.
func Checks() []conformance.Check {
	return []conformance.Check{
		{
			ID:      "core-http/http1",
			Title:   "HTTP/1.1 request forwarded and answered",
			Asserts: "A GET over HTTP/1.1 with keep-alive reaches the backend and its answer (status, body, a response header) comes back over HTTP/1.1, ten times on one connection.",
			Run:     http1,
		},
		{
			ID:    "core-http/h2c-prior-knowledge",
			Title: "HTTP/2 cleartext with prior knowledge forwarded and answered",
			Asserts: "Ten GETs sent as HTTP/2 with prior knowledge (h2c, no upgrade) on one connection are answered over HTTP/2 with the backend's status, body and X-Backend header. " +
				"Mesh workloads talk HTTP/2 in cleartext to their sidecar, which must accept it on the same listener as HTTP/1.1.",
			Run: h2cPriorKnowledge,
		},
		{
			ID:    "core-http/h2-alpn",
			Title: "HTTP/2 over TLS negotiated by ALPN",
			Asserts: "A TLS listener (server certificate only, no client certificate) configured for h2 selects h2 by ALPN when the client offers h2 and http/1.1, and ten GETs are answered over HTTP/2 with the backend's answer. " +
				"Ingress and edge listeners terminate TLS and must serve HTTP/2 there, which clients only reach through ALPN.",
			Run: h2ALPN,
		},
		{
			ID:    "core-http/route-authority",
			Title: "Requests routed by authority (Host)",
			Asserts: "With two routes matching the authorities alpha.test and beta.test to two clusters with different backends, requests for alpha.test, ALPHA.test, alpha.test:8080, beta.test and beta.test:8080 (five rounds) each reach the backend of their authority's cluster, with the authority kept. " +
				"A mesh routes by the service name a client addresses; the port and the case of a host name do not change which service it names.",
			Run: routeAuthority,
		},
		{
			ID:    "core-http/route-path-prefix",
			Title: "Requests routed by path prefix",
			Asserts: "With a route for the path prefix /alpha/ ahead of a route for /, to two clusters with different backends, /alpha/ and /alpha/x/y reach the first cluster's backend and /, /beta/x, /alpha and /alphabet the second's (five rounds; routes are tried in order, a prefix is a string prefix). " +
				"Path routing splits one service name between workloads (an API and its static files, versions of an API).",
			Run: routePathPrefix,
		},
		{
			ID:    "core-http/route-header",
			Title: "Requests routed by header match",
			Asserts: "With a route matching the header X-Variant: canary (exact) ahead of a catch-all route, to two clusters with different backends, requests with X-Variant: canary reach the first cluster's backend and requests without the header or with X-Variant: stable the second's (five rounds). " +
				"Header matches carry canary releases and per-tenant routing in a mesh.",
			Run: routeHeader,
		},
		{
			ID:    "core-http/hop-by-hop",
			Title: "Hop-by-hop headers removed in both directions",
			Asserts: "An HTTP/1.1 request carrying Connection (naming X-Hop-A), X-Hop-A, Keep-Alive, Proxy-Connection, Upgrade (not an upgrade), TE: deflate and a chunked body reaches the backend without any of them, with its end-to-end header X-End-To-End and its body intact; " +
				"the backend's response hop-by-hop headers (Connection naming X-Resp-Hop, X-Resp-Hop) do not reach the client, its end-to-end X-Resp-End does. " +
				"RFC 9110 §7.6.1: these fields describe one connection, and a proxy that forwards them lets a client or server control the other hop's connection (or smuggle headers past the proxy's own rules).",
			Needs: []string{peers.CapHopByHop},
			Run:   hopByHop,
		},
		{
			ID:    "core-http/x-forwarded-for",
			Title: "X-Forwarded-For appended",
			Asserts: "A request with X-Forwarded-For: 192.0.2.7 reaches the backend with \"192.0.2.7, 127.0.0.1\" (the client's address appended, earlier hops kept), and a request without one reaches it with \"127.0.0.1\". " +
				"Backends behind a mesh see the proxy's address as their peer; the client's address travels only in this header.",
			Run: xForwardedFor,
		},
		{
			ID:    "core-http/request-id",
			Title: "X-Request-Id generated when missing, kept when present",
			Asserts: "Twenty requests without X-Request-Id each reach the backend with one non-empty X-Request-Id, all twenty different; a request with X-Request-Id: meshbench-client-id-1 reaches it with exactly that value. " +
				"A request ID correlates one request's log lines across every hop of a mesh: it must exist, be unique, and never be replaced once set.",
			Run: requestID,
		},
		{
			ID:    "core-http/stream-request-body",
			Title: "Request body streamed to the backend",
			Asserts: "Over HTTP/1.1 with a chunked request body, the backend reads the first 32-byte part while the client still holds back the second part, within " + streamBound.String() + " of the client sending it; the whole body then arrives intact. " +
				"A proxy that buffers request bodies whole breaks uploads of unbounded length, client-streaming protocols and full-duplex exchanges, and adds the body's transfer time to every request's latency.",
			Run: streamRequestBody,
		},
		{
			ID:    "core-http/stream-response-body",
			Title: "Response body streamed to the client",
			Asserts: "Over HTTP/1.1 with a chunked response, the client receives the first 32-byte part the backend wrote and flushed within " + streamBound.String() + ", while the backend holds back the rest until the client has read it; the whole body then arrives intact. " +
				"A proxy that buffers responses whole breaks server-sent events, long polls and downloads of unbounded length.",
			Run: streamResponseBody,
		},
	}
}

// sidecar is the configuration most checks start from: one outbound
// listener serving HTTP/1.1 and h2c, every request to cluster "app".
func sidecar(listen string, protocol string, endpoints ...string) *config.Config {
	return conformance.Forward(listen, config.ProtoAuto, 5*time.Second, config.Cluster{Protocol: protocol, Endpoints: endpoints})
}

func http1(e *conformance.Env) error {
	be, err := e.StartBackend(conformance.BackendOptions{Name: "be-0"})
	if err != nil {
		return err
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	if _, err := e.StartProxy(sidecar(listen, config.UpstreamHTTP1, be.Addr)); err != nil {
		return err
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for i := range 10 {
		resp, err := c.Get("http://" + listen + "/hello")
		if err != nil {
			return fmt.Errorf("GET %d: %w", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("GET %d: reading the body: %w", i, err)
		}
		switch {
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("GET %d: %s, want 200", i, resp.Status)
		case resp.ProtoMajor != 1 || resp.ProtoMinor != 1:
			return fmt.Errorf("GET %d: answered over %s, want HTTP/1.1", i, resp.Proto)
		case strings.TrimSpace(string(body)) != be.Name || resp.Header.Get(conformance.HeaderBackend) != be.Name:
			return fmt.Errorf("GET %d: body %q, %s %q: not the backend's answer", i, body, conformance.HeaderBackend, resp.Header.Get(conformance.HeaderBackend))
		}
	}
	if n := be.Count(); n != 10 {
		return fmt.Errorf("the backend saw %d requests, want 10", n)
	}
	return nil
}

// get sends a GET with c and checks that backend be answered it in full
// over HTTP/major (any when 0); it returns the response, its body read
// and closed.
func get(e *conformance.Env, c *http.Client, url string, major int, be *conformance.Backend) (*http.Response, error) {
	req, err := http.NewRequestWithContext(e.Context(), http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the body: %w", url, err)
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s, want 200", url, resp.Status)
	case major != 0 && resp.ProtoMajor != major:
		return nil, fmt.Errorf("GET %s: answered over %s, want HTTP/%d", url, resp.Proto, major)
	case strings.TrimSpace(string(body)) != be.Name || resp.Header.Get(conformance.HeaderBackend) != be.Name:
		return nil, fmt.Errorf("GET %s: body %q, %s %q: not the answer of backend %s", url, body, conformance.HeaderBackend, resp.Header.Get(conformance.HeaderBackend), be.Name)
	}
	return resp, nil
}

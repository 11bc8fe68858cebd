package corehttp

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meshbench/meshbench/conformance"
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
	}
}

// sidecar is the configuration most checks start from: one outbound
// listener serving HTTP/1.1 and h2c, every request to cluster "app".
func sidecar(listen string, protocol string, endpoints ...string) *config.Config {
	return &config.Config{
		Listeners: []config.Listener{{Name: "outbound", Address: listen, Protocol: config.ProtoAuto, Routes: []config.Route{
			{Name: "app", Match: config.Match{PathPrefix: "/"}, Cluster: "app", Timeout: config.Duration(5 * time.Second)},
		}}},
		Clusters: []config.Cluster{{Name: "app", Protocol: protocol, Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: endpoints}},
	}
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

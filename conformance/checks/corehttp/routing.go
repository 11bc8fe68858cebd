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

// routeRounds is how many times the routing checks send each request.
const routeRounds = 5

// routeCase is one request of a routing check and the cluster (index
// into the two) it must reach.
type routeCase struct {
	host, path string
	header     http.Header
	want       int
}

func (rc routeCase) String() string {
	s := "Host " + rc.host + ", path " + rc.path
	for k, v := range rc.header {
		s += ", " + k + ": " + strings.Join(v, ",")
	}
	return s
}

// routeByMatch starts two backends behind clusters alpha and beta, a
// listener with one route per match (the i-th to cluster clusters[i]),
// and checks that every case lands on its cluster's backend.
func routeByMatch(e *conformance.Env, matches []config.Match, clusters []int, cases []routeCase) error {
	names := []string{"alpha", "beta"}
	var bes []*conformance.Backend
	for _, n := range names {
		be, err := e.StartBackend(conformance.BackendOptions{Name: "be-" + n})
		if err != nil {
			return err
		}
		bes = append(bes, be)
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	cfg := &config.Config{Listeners: []config.Listener{{Name: "outbound", Address: listen, Protocol: config.ProtoAuto}}}
	for i, m := range matches {
		cfg.Listeners[0].Routes = append(cfg.Listeners[0].Routes, config.Route{
			Name: fmt.Sprintf("r%d", i), Match: m, Cluster: names[clusters[i]], Timeout: config.Duration(5 * time.Second)})
	}
	for i, n := range names {
		cfg.Clusters = append(cfg.Clusters, config.Cluster{Name: n, Protocol: config.UpstreamHTTP1,
			Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: []string{bes[i].Addr}})
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return err
	}
	c := client(e)
	var problems []string
	for round := range routeRounds {
		for _, rc := range cases {
			for _, be := range bes {
				be.Clear()
			}
			req, err := http.NewRequestWithContext(e.Context(), http.MethodGet, "http://"+listen+rc.path, nil)
			if err != nil {
				return fmt.Errorf("request %s: %w", rc, err)
			}
			req.Host = rc.host
			for k, v := range rc.header {
				req.Header[k] = v
			}
			resp, err := c.Do(req)
			if err != nil {
				return fmt.Errorf("round %d, request %s: %w", round, rc, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			want := bes[rc.want]
			got := resp.Header.Get(conformance.HeaderBackend)
			switch {
			case resp.StatusCode != http.StatusOK:
				problems = append(problems, fmt.Sprintf("%s: answered %s, want 200 from %s", rc, resp.Status, want.Name))
			case got != want.Name:
				problems = append(problems, fmt.Sprintf("%s: answered by %q, want %s (cluster %s)", rc, got, want.Name, names[rc.want]))
			case want.Count() != 1:
				problems = append(problems, fmt.Sprintf("%s: backend %s saw %d requests, want 1", rc, want.Name, want.Count()))
			default:
				if h := want.Requests()[0].Host; !strings.EqualFold(h, rc.host) {
					problems = append(problems, fmt.Sprintf("%s: the backend saw Host %q, want it kept", rc, h))
				}
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("round %d: %w", round, conformance.Problems(problems))
		}
	}
	return nil
}

func routeAuthority(e *conformance.Env) error {
	return routeByMatch(e,
		[]config.Match{{Authority: "alpha.test"}, {Authority: "beta.test"}},
		[]int{0, 1},
		[]routeCase{
			{host: "alpha.test", path: "/", want: 0},
			{host: "beta.test", path: "/", want: 1},
			{host: "ALPHA.test", path: "/x", want: 0},
			{host: "alpha.test:8080", path: "/", want: 0},
			{host: "beta.test:8080", path: "/x", want: 1},
		})
}

func routePathPrefix(e *conformance.Env) error {
	return routeByMatch(e,
		[]config.Match{{PathPrefix: "/alpha/"}, {PathPrefix: "/"}},
		[]int{0, 1},
		[]routeCase{
			{host: "app.test", path: "/alpha/", want: 0},
			{host: "app.test", path: "/alpha/x/y", want: 0},
			{host: "app.test", path: "/", want: 1},
			{host: "app.test", path: "/beta/x", want: 1},
			{host: "app.test", path: "/alpha", want: 1},
			{host: "app.test", path: "/alphabet", want: 1},
		})
}

func routeHeader(e *conformance.Env) error {
	return routeByMatch(e,
		[]config.Match{{Headers: []config.HeaderMatch{{Name: "X-Variant", Exact: "canary"}}}, {PathPrefix: "/"}},
		[]int{0, 1},
		[]routeCase{
			{host: "app.test", path: "/", header: http.Header{"X-Variant": {"canary"}}, want: 0},
			{host: "app.test", path: "/", want: 1},
			{host: "app.test", path: "/x", header: http.Header{"X-Variant": {"stable"}}, want: 1},
			{host: "app.test", path: "/x", header: http.Header{"X-Variant": {"canary"}}, want: 0},
		})
}

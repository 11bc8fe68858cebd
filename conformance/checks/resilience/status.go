package resilience

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/proxy/config"
)

// The status mapping checks' parameters.
const (
	statusRouteTimeout = 300 * time.Millisecond
	statusSlow         = 4 * time.Second
	// statusPatience is how long the client waits for any answer: long
	// past the route timeout and a refused connect, short of the slow
	// endpoint's answer.
	statusPatience     = 2 * time.Second
	noEndpointRequests = 3
)

func statusMapping(e *conformance.Env) error {
	slow, err := e.StartBackend(conformance.BackendOptions{Name: "be-slow", Behaviour: conformance.Behaviour{Delay: statusSlow}})
	if err != nil {
		return err
	}
	reset, err := e.StartBackend(conformance.BackendOptions{Name: "be-reset", Behaviour: conformance.Behaviour{Reset: true}})
	if err != nil {
		return err
	}
	closed, err := e.Addr() // nothing listens there
	if err != nil {
		return err
	}
	// One listener per case: a route's timeout is its listener's in some
	// peers' configurations.
	cfg := &config.Config{Clusters: []config.Cluster{cluster("refused", closed), cluster("reset", reset.Addr), cluster("slow", slow.Addr)}}
	listens := map[string]string{}
	for _, name := range []string{"refused", "reset", "slow"} {
		listen, err := e.Addr()
		if err != nil {
			return err
		}
		listens["/"+name] = listen
		timeout := 5 * time.Second
		if name == "slow" {
			timeout = statusRouteTimeout
		}
		l := listener(listen, route(name, "/", name, timeout, nil))
		l.Name = name
		cfg.Listeners = append(cfg.Listeners, l)
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return err
	}
	c := client(e, statusPatience)
	var problems []string
	for _, tc := range []struct {
		path, what string
		want       []int
	}{
		{"/refused", "an endpoint that refuses connections", []int{http.StatusBadGateway, http.StatusServiceUnavailable}},
		{"/reset", "an endpoint that closes the connection without an answer", []int{http.StatusBadGateway, http.StatusServiceUnavailable}},
		{"/slow", fmt.Sprintf("an endpoint answering after %v on a route with a timeout of %v", statusSlow, statusRouteTimeout), []int{http.StatusGatewayTimeout}},
	} {
		a := get(e.Context(), c, "http://"+listens[tc.path]+tc.path, nil)
		if err := e.Context().Err(); err != nil {
			return err
		}
		e.Figure(tc.path[1:]+"_status", float64(a.status), "")
		e.Figure(tc.path[1:]+"_time", ms(a.took), "ms")
		switch {
		case a.err != nil:
			problems = append(problems, fmt.Sprintf("%s: no answer within %v (%v), want %v", tc.what, statusPatience, a.err, tc.want))
		case !contains(tc.want, a.status):
			problems = append(problems, fmt.Sprintf("%s: answered %d after %v, want %v", tc.what, a.status, a.took.Round(time.Millisecond), tc.want))
		case tc.path == "/slow" && a.took < statusRouteTimeout*9/10:
			problems = append(problems, fmt.Sprintf("%s: answered 504 after %v, before the route timeout", tc.what, a.took.Round(time.Millisecond)))
		}
	}
	return conformance.Problems(problems)
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func noEndpoint(e *conformance.Env) error {
	dir, err := e.Dir()
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "endpoints.yaml")
	if err := os.WriteFile(file, []byte("endpoints: []\n"), 0o644); err != nil {
		return fmt.Errorf("writing the endpoints file: %w", err)
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	cl := config.Cluster{Name: "app", Protocol: config.UpstreamHTTP1, Balancer: config.Balancer{Policy: "round_robin"},
		EndpointsFile: &config.EndpointsFile{Path: file}}
	cfg := &config.Config{
		Listeners: []config.Listener{listener(listen, route("app", "/", "app", 5*time.Second, nil))},
		Clusters:  []config.Cluster{cl},
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return err
	}
	c := client(e, statusPatience)
	var worst time.Duration
	defer func() { e.Figure("slowest_answer", ms(worst), "ms") }()
	for i := range noEndpointRequests {
		a := get(e.Context(), c, "http://"+listen+"/", nil)
		if err := e.Context().Err(); err != nil {
			return err
		}
		worst = max(worst, a.took)
		switch {
		case a.err != nil:
			return fmt.Errorf("request %d to a cluster without endpoints: no answer within %v (%v), want 503", i, statusPatience, a.err)
		case a.status != http.StatusServiceUnavailable:
			return fmt.Errorf("request %d to a cluster without endpoints: answered %d, want 503", i, a.status)
		}
	}
	return nil
}

package observability

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/proxy/config"
)

const (
	// trafficDuration is how long each check's traffic lasts: requests
	// are spread evenly over it. It starts just after a scrape and ends
	// before the next, so that the second scrape after it comes 2 s
	// after the one before it.
	trafficDuration = 700 * time.Millisecond
	// workersPerRoute is how many requests of one route may be in flight
	// at once.
	workersPerRoute = 16
	// trafficTimeout bounds the traffic beyond trafficDuration (a slow
	// proxy's requests fall behind their schedule).
	trafficTimeout = 10 * time.Second
	// scrapesAfter is how many scrapes the check waits for once the
	// traffic has ended: the reference proxy counts a response once it
	// has written it, which may be just after the client has read it.
	scrapesAfter = 2
)

// routeSpec is one route of a check's configuration, its cluster and
// the traffic it gets.
type routeSpec struct {
	// name is the route's name, host the authority it matches, cluster
	// its cluster's name.
	name, host, cluster string
	// backends are the endpoints of the cluster.
	backends []conformance.BackendOptions
	// requests is how many requests the route gets, spread over
	// trafficDuration.
	requests int
	// failEvery makes every failEvery-th request (the 4th, 8th, ... for
	// 4) ask its backend for a 503 (path /status/503); 0 for none.
	failEvery int
}

// fails reports whether request i (from 0) of the route asks for a 503.
func (r routeSpec) fails(i int) bool { return r.failEvery > 0 && i%r.failEvery == r.failEvery-1 }

// wantFailures is how many of the route's requests ask for a 503.
func (r routeSpec) wantFailures() int {
	if r.failEvery == 0 {
		return 0
	}
	return r.requests / r.failEvery
}

// tally is what the client saw of one route's traffic.
type tally struct {
	sent, failed int // requests answered, those answered 5xx
	// latencies are the requests' times from sending to the end of the
	// response's body, in the order they ended.
	latencies []time.Duration
}

// p99 is the 99th percentile of the client's latencies (nearest rank).
func (t tally) p99() time.Duration {
	if len(t.latencies) == 0 {
		return 0
	}
	l := slices.Clone(t.latencies)
	slices.Sort(l)
	return l[(len(l)*99+99)/100-1]
}

// scenario is a check's setup once its traffic has been scraped: the
// proxy's metrics over exactly that traffic can be asked for.
type scenario struct {
	e        *conformance.Env
	d        dialect
	prom     *promServer
	routes   []routeSpec
	backends [][]*conformance.Backend // by route, in endpoint order
	sent     []tally                  // by route
	// took is how long the traffic took.
	took time.Duration
	// rng is the PromQL range from the last scrape before the traffic to
	// at, the last scrape after it.
	rng string
	at  time.Time
}

// setup runs check id's scenario: it starts the routes' backends, the
// proxy with one listener whose routes match the routes' hosts, and
// Prometheus scraping it; sends each route one warm-up request (and one
// 503 when it has failures), so that every series the traffic touches
// exists before it; waits for a scrape; sends the traffic; and waits
// for scrapesAfter scrapes. It ends the check unsupported (or skipped)
// before anything starts when the target's table entry says so or
// prometheus is missing.
func setup(e *conformance.Env, id string, routes []routeSpec) (*scenario, error) {
	t := e.Target()
	d, known := dialects()[t.Name]
	if r := d.unsupported[id]; known && r != "" {
		return nil, conformance.Unsupported("%s", r)
	}
	bin := e.Tools().Prometheus
	if bin == "" {
		return nil, conformance.Skipped("no prometheus server binary on PATH (Debian package prometheus)")
	}
	listen, err := e.Addr()
	if err != nil {
		return nil, err
	}
	s := &scenario{e: e, d: d, routes: routes}
	cfg := &config.Config{Listeners: []config.Listener{{Name: "outbound", Address: listen, Protocol: config.ProtoAuto}}}
	for _, r := range routes {
		var bes []*conformance.Backend
		var addrs []string
		for _, o := range r.backends {
			be, err := e.StartBackend(o)
			if err != nil {
				return nil, err
			}
			bes = append(bes, be)
			addrs = append(addrs, be.Addr)
		}
		s.backends = append(s.backends, bes)
		cfg.Listeners[0].Routes = append(cfg.Listeners[0].Routes, config.Route{
			Name: r.name, Match: config.Match{Authority: r.host}, Cluster: r.cluster, Timeout: config.Duration(5 * time.Second)})
		cfg.Clusters = append(cfg.Clusters, config.Cluster{Name: r.cluster, Protocol: config.UpstreamHTTP1,
			Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: addrs})
	}
	p, err := e.StartProxy(cfg)
	if err != nil {
		return nil, err
	}
	if p.Metrics == "" {
		return nil, conformance.Unsupported("%s has no Prometheus endpoint: %s", t.Name, t.Capabilities().Metrics)
	}
	if !known {
		return nil, conformance.Unsupported("%s serves metrics (%s) but the check knows no PromQL for its series", t.Name, t.Capabilities().Metrics)
	}
	if s.prom, err = startPrometheus(e, bin, p.Metrics); err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: workersPerRoute * len(routes), DisableCompression: true}
	e.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i, r := range routes {
		paths := []string{"/"}
		if r.failEvery > 0 {
			paths = append(paths, "/status/503")
		}
		for _, path := range paths {
			if err := s.get(client, listen, i, path); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	warm := time.Now()
	ctx := e.Context()
	pre, err := s.prom.waitScrapes(ctx, warm, 1)
	if err != nil {
		return nil, err
	}
	if err := s.prom.up(ctx, pre); err != nil {
		return nil, err
	}
	for _, bes := range s.backends {
		for _, be := range bes {
			be.Clear()
		}
	}
	start := time.Now()
	if s.sent, err = s.traffic(client, listen); err != nil {
		return nil, err
	}
	end := time.Now()
	s.took = end.Sub(start)
	if s.at, err = s.prom.waitScrapes(ctx, end, scrapesAfter); err != nil {
		return nil, err
	}
	if err := s.prom.up(ctx, s.at); err != nil {
		return nil, err
	}
	// From the scrape before the traffic (included: 1 ms more) to the
	// one at the end: increase() over it is the traffic's exact count
	// (its extrapolation adds 1 ms's worth, under 0.1 %).
	s.rng = fmt.Sprintf("%dms", s.at.Sub(pre).Milliseconds()+1)
	e.Log().Info("traffic scraped", "prometheus", s.prom.url, "range", s.rng, "at", s.at, "took", s.took)
	return s, nil
}

// get sends one request of route i and checks that the route's backend
// answered it as asked.
func (s *scenario) get(client *http.Client, listen string, i int, path string) error {
	r := s.routes[i]
	req, err := http.NewRequestWithContext(s.e.Context(), http.MethodGet, "http://"+listen+path, nil)
	if err != nil {
		return err
	}
	req.Host = r.host
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s%s: %w", r.host, path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	want := http.StatusOK
	if path == "/status/503" {
		want = http.StatusServiceUnavailable
	}
	from := resp.Header.Get(conformance.HeaderBackend)
	if resp.StatusCode != want || !slices.ContainsFunc(r.backends, func(o conformance.BackendOptions) bool { return o.Name == from }) {
		return fmt.Errorf("GET %s%s (route %s): %s from backend %q, want %d from a backend of cluster %s", r.host, path, r.name, resp.Status, from, want, r.cluster)
	}
	return nil
}

// traffic sends each route its requests, request i of a route at
// i·trafficDuration/requests from the start, up to workersPerRoute at
// once per route, and returns what the client saw by route. A request
// the proxy did not forward as configured is an error.
func (s *scenario) traffic(client *http.Client, listen string) ([]tally, error) {
	ctx, cancel := context.WithTimeout(s.e.Context(), trafficDuration+trafficTimeout)
	defer cancel()
	start := time.Now()
	tallies := make([]tally, len(s.routes))
	var (
		mu       sync.Mutex
		problems []string
		wg       sync.WaitGroup
	)
	for ri, r := range s.routes {
		next := make(chan int)
		go func() {
			defer close(next)
			for i := range r.requests {
				select {
				case next <- i:
				case <-ctx.Done():
					return
				}
			}
		}()
		for range workersPerRoute {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					at := start.Add(time.Duration(i) * trafficDuration / time.Duration(r.requests))
					select {
					case <-time.After(time.Until(at)):
					case <-ctx.Done():
						return
					}
					path := "/"
					if r.fails(i) {
						path = "/status/503"
					}
					sent := time.Now()
					err := s.get(client, listen, ri, path)
					took := time.Since(sent)
					mu.Lock()
					if err != nil {
						if len(problems) < 3 {
							problems = append(problems, err.Error())
						}
						cancel()
					} else {
						tallies[ri].sent++
						tallies[ri].latencies = append(tallies[ri].latencies, took)
						if r.fails(i) {
							tallies[ri].failed++
						}
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(problems) > 0 {
		return nil, fmt.Errorf("the traffic: %w", conformance.Problems(problems))
	}
	for i, r := range s.routes {
		if tallies[i].sent != r.requests {
			return nil, fmt.Errorf("the traffic: route %s: %d of %d requests answered within %v", r.name, tallies[i].sent, r.requests, trafficDuration+trafficTimeout)
		}
	}
	return tallies, nil
}

// perRoute runs the per-route query q and returns its value for each of
// the check's routes; a route without a value is a problem.
func (s *scenario) perRoute(what, q string) ([]float64, []string, error) {
	got, err := s.prom.byLabel(s.e.Context(), q, s.d.routeLabel, s.at)
	if err != nil {
		return nil, nil, fmt.Errorf("asking Prometheus for %s: %w", what, err)
	}
	vals := make([]float64, len(s.routes))
	var problems []string
	for i, r := range s.routes {
		key := s.d.routeValue(r.name, r.cluster)
		v, ok := got[key]
		if !ok {
			problems = append(problems, fmt.Sprintf("Prometheus has no %s for route %s (%s=%q) in %s (series for %v)", what, r.name, s.d.routeLabel, key, q, keys(got)))
			continue
		}
		vals[i] = v
	}
	return vals, problems, nil
}

// keys lists a map's keys, sorted.
func keys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

package resilience

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
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
			ID:    "resilience/retry-503",
			Title: "A 503 from one endpoint retried on another",
			Asserts: fmt.Sprintf("With three endpoints balanced round robin, one of which answers every request 503, and a route that retries on 503 with 2 attempts, "+
				"%d sequential requests are all answered 200, and the 503 endpoint saw at least one of them. "+
				"A mesh hides an endpoint's transient overload from its callers by trying another endpoint.", retryRequests),
			Needs: []string{peers.CapRetry},
			Run:   retry503,
		},
		{
			ID:    "resilience/retry-reset",
			Title: "A reset from one endpoint retried on another",
			Asserts: fmt.Sprintf("With three endpoints balanced round robin, one of which closes the connection without answering, and a route that retries on reset with 2 attempts, "+
				"%d sequential requests are all answered 200, and the resetting endpoint saw at least one of them. "+
				"Crashing or restarting workloads break connections; a mesh retries a request that got no response.", retryRequests),
			Needs: []string{peers.CapRetry},
			Run:   retryReset,
		},
		{
			ID:    "resilience/retry-budget",
			Title: "Concurrent retries capped by the cluster's retry budget",
			Asserts: fmt.Sprintf("Every endpoint answers 503 after %v; the route retries 503 with %d attempts; the cluster's retry_budget is ratio %v, min_concurrency %d. "+
				"%d client workers send requests for %v (so at most %d requests are active, and %d even counting a worker's next request arriving before the proxy has finished its last). "+
				"Asserted: no request reaches the backends more than %d times (the attempts, the first included); at least one retry reaches them (the route does retry); "+
				"and at no moment are more retry attempts in progress at the backends than the budget allows, max(min_concurrency, ⌊ratio × active requests⌋) = %d "+
				"(a retry attempt is one whose request the backends had already seen; it is in progress from its arrival until its answer is written, which lies within the time the proxy holds its retry). "+
				"Envoy's budget: during an outage retries add at most a share of the load instead of multiplying it by the attempts.",
				budgetDelay, budgetAttempts, budgetRatio, budgetMinConcurrency, budgetWorkers, budgetRun, budgetWorkers, 2*budgetWorkers,
				budgetAttempts, budgetLimit()),
			Needs: []string{peers.CapRetry, peers.CapRetryBudget},
			Run:   retryBudget,
		},
		{
			ID:    "resilience/per-try-timeout",
			Title: "A hung attempt cut off by the per-try timeout and retried",
			Asserts: fmt.Sprintf("With two endpoints balanced round robin, one answering after %v, and a route (timeout %v) that retries on reset (an expired per-try timeout counts as one) with 2 attempts and a per-try timeout of %v, "+
				"%d sequential requests are all answered 200, at least one of them met the slow endpoint, and each one that did is answered within %d × the per-try timeout + the floor "+
				"(the slowest of %d requests through the proxy to the fast endpoint alone, measured first: the machine's own delays). "+
				"A per-try timeout keeps one hung endpoint from consuming a request's whole deadline.", perTrySlow, perTryRoute, perTryTimeout, perTryRequests, perTryFactor, perTryFloorRequests),
			Needs: []string{peers.CapRetry},
			Run:   perTry,
		},
		{
			ID:    "resilience/outlier-ejection",
			Title: "A failing endpoint ejected, then returned",
			Asserts: fmt.Sprintf("With three endpoints balanced round robin and outlier_detection (consecutive_5xx and consecutive_gateway_failure 3, base_ejection_time %v, max_ejection_percent 50), one endpoint answers 503. "+
				"Once it has seen 3 requests, it receives none of the requests sent within %v of the third one's (at least %d of them); it is then healed and receives a request again within %v of the third one. "+
				"Ejection stops sending traffic to an endpoint that fails every request; the return lets a recovered one carry load again without an operator.", ejectBase, ejectWindow, ejectMinRequests, ejectReturnBound),
			Needs: []string{peers.CapOutlier, peers.CapOutlierStatus},
			Run:   outlierEjection,
		},
		{
			ID:    "resilience/status-mapping",
			Title: "Upstream failures answered with gateway statuses",
			Asserts: fmt.Sprintf("A request to a cluster whose endpoint refuses connections (a closed port) and one to a cluster whose endpoint closes the connection without an answer are each answered 502 or 503 (the reference, like Envoy and HAProxy, answers 503 for a refused connect; nginx and Caddy answer 502); "+
				"a request to a cluster whose endpoint answers after %v, on a route with a timeout of %v, is answered 504, no sooner than the route timeout; every answer arrives within the client's patience of %v. "+
				"A caller tells from the status whether the proxy could not reach the service (retry elsewhere, fail over) or the service was too slow (the deadline is gone).", statusSlow, statusRouteTimeout, statusPatience),
			Run: statusMapping,
		},
		{
			ID:    "resilience/no-endpoint-503",
			Title: "A cluster without endpoints answered 503",
			Asserts: fmt.Sprintf("A cluster whose endpoint source (an endpoints file) lists no endpoint answers each of %d requests 503 within %v. "+
				"During a rollout or a scale to zero a service has no endpoint; callers must get a fast, retryable answer, not a hang.", noEndpointRequests, statusPatience),
			Run: noEndpoint,
		},
	}
}

// listener is the single outbound listener of the profile's checks.
func listener(listen string, routes ...config.Route) config.Listener {
	return config.Listener{Name: "outbound", Address: listen, Protocol: config.ProtoHTTP1, Routes: routes}
}

// cluster is a round-robin HTTP/1.1 cluster over endpoints.
func cluster(name string, endpoints ...string) config.Cluster {
	return config.Cluster{Name: name, Protocol: config.UpstreamHTTP1, Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: endpoints}
}

// route sends every request under prefix to cluster.
func route(name, prefix, cluster string, timeout time.Duration, rt *config.Retry) config.Route {
	return config.Route{Name: name, Match: config.Match{PathPrefix: prefix}, Cluster: cluster, Timeout: config.Duration(timeout), Retry: rt}
}

// backends starts n backends be-0 ... with the first one's behaviour
// set to bad.
func backends(e *conformance.Env, n int, bad conformance.Behaviour) ([]*conformance.Backend, []string, error) {
	var bes []*conformance.Backend
	var addrs []string
	for i := range n {
		o := conformance.BackendOptions{Name: fmt.Sprintf("be-%d", i)}
		if i == 0 {
			o.Behaviour = bad
		}
		be, err := e.StartBackend(o)
		if err != nil {
			return nil, nil, err
		}
		bes = append(bes, be)
		addrs = append(addrs, be.Addr)
	}
	return bes, addrs, nil
}

// client is an HTTP/1.1 keep-alive client with the given patience.
func client(e *conformance.Env, patience time.Duration) *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	tr := &http.Transport{Protocols: &p, MaxIdleConnsPerHost: 64}
	e.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: patience, Transport: tr}
}

// answer is what a client got for one request.
type answer struct {
	status  int
	backend string
	took    time.Duration
	err     error
}

// get sends one GET and reads the whole answer.
func get(ctx context.Context, c *http.Client, url string, header http.Header) answer {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return answer{err: err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return answer{status: resp.StatusCode, backend: resp.Header.Get(conformance.HeaderBackend), took: time.Since(start), err: err}
}

// tally counts answers by status ("error" for transport failures).
func tally(as []answer) string {
	m := map[string]int{}
	for _, a := range as {
		k := fmt.Sprint(a.status)
		if a.err != nil {
			k = "error"
		}
		m[k]++
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// ms is a duration in milliseconds, for figures.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

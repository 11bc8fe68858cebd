package observability

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/meshbench/meshbench/conformance"
)

// Traffic of the checks and their tolerances.
const (
	// rateFastRequests and rateErrorsRequests are what the two routes of
	// route-request-rate get over trafficDuration (about 171/s and 86/s):
	// the rates differ so that series of one route labelled with the
	// other's name cannot pass.
	rateFastRequests   = 120
	rateErrorsRequests = 60
	// rateTolerance is the relative error allowed on a route's request
	// count: the count is exact but for increase()'s extrapolation over
	// the range's extra millisecond (under 0.1 %).
	rateTolerance = 0.02
	// successRequests is what each route of route-success-rate gets;
	// every successFailEvery-th request of the errors route asks its
	// backend for a 503, so its success ratio is 75 %.
	successRequests  = 80
	successFailEvery = 4
	// successTolerance is the absolute error allowed on a success ratio
	// (5 percentage points; one response of 80 is 1.25 points).
	successTolerance = 0.05
	// p99Requests is what each route of route-p99 gets; p99Delay is how
	// long the slow route's backend waits before it answers.
	p99Requests = 100
	p99Delay    = 100 * time.Millisecond
	// endpointRequests is what the route of endpoint-series gets, round
	// robin over endpointCount endpoints.
	endpointRequests = 90
	endpointCount    = 3
)

// Checks returns the profile's checks.
func Checks() []conformance.Check {
	return []conformance.Check{
		{
			ID:    idRouteRequestRate,
			Title: "Per-route request rate in Prometheus matches the traffic",
			Asserts: "Two routes (authorities fast.test and errors.test, each to a cluster of its own) get " + strconv.Itoa(rateFastRequests) + " and " +
				strconv.Itoa(rateErrorsRequests) + " requests spread evenly over " + trafficDuration.String() + " (" + perSecond(rateFastRequests) + " and " + perSecond(rateErrorsRequests) + "). A Prometheus server scraping the proxy every " +
				scrapeInterval.String() + " is asked, by the proxy's own series, for each route's increase() from the last scrape before the traffic to the second after it; " +
				"each route's count (and so its rate over the traffic) must match what was sent within " + pct(rateTolerance) + ". " +
				"Request rate per route is the first signal a mesh's dashboards and autoscalers read; a count on the wrong route or a lost count misleads both. " +
				"Not statistical: the counts are exact, the tolerance covers Prometheus's extrapolation only.",
			Run: routeRequestRate,
		},
		{
			ID:    idRouteSuccessRate,
			Title: "Per-route success ratio in Prometheus matches the responses",
			Asserts: "Two routes get " + strconv.Itoa(successRequests) + " requests each over " + trafficDuration.String() + "; every " +
				strconv.Itoa(successFailEvery) + "th request of the second asks its backend for a 503, so the client sees 100 % and 75 % non-5xx answers. " +
				"Prometheus, scraping the proxy every " + scrapeInterval.String() + ", is asked for each route's ratio of non-5xx responses to all responses over the traffic (increase() of the proxy's response series); " +
				"each must be the client's ratio within " + strconv.Itoa(int(successTolerance*100)) + " percentage points. " +
				"The success rate per route is what a mesh's alerts and progressive rollouts decide on. Not statistical: the ratios are exact counts.",
			Run: routeSuccessRate,
		},
		{
			ID:    idRouteP99,
			Title: "Per-route p99 latency in Prometheus reflects a backend's delay",
			Asserts: "Two routes get " + strconv.Itoa(p99Requests) + " requests each over " + trafficDuration.String() + "; the backend of the slow route waits " + p99Delay.String() +
				" before it answers, the other answers at once. histogram_quantile(0.99, ...) over the proxy's latency histogram for the traffic must put the slow route's p99 at or above " +
				p99Delay.String() + " and no higher than the second bucket bound above the delay (the bucket its requests fall in, plus one for scheduling stalls), " +
				"and the fast route's p99 at or below the highest bucket bound under the delay. On a host loaded enough that the client's own p99 of a route is higher, " +
				"that route's upper bound is the bound of the bucket holding the client's p99: the proxy times each request within the client's time for it. " +
				"Tail latency per route is how a mesh finds its slow service. Not statistical: no stall can lower a latency below the backend's delay, " +
				"and the upper bounds follow what the client measured.",
			Run: routeP99,
		},
		{
			ID:    idEndpointSeries,
			Title: "Per-endpoint request counts in Prometheus match the backends",
			Asserts: "One route to a cluster of " + strconv.Itoa(endpointCount) + " endpoints (round robin) gets " + strconv.Itoa(endpointRequests) + " requests over " + trafficDuration.String() +
				". Prometheus is asked for the proxy's per-endpoint request series over the traffic (increase()), and each endpoint's count must equal, to the nearest request, " +
				"the number of requests its backend saw. Per-endpoint series show a mesh's balancing and single out a bad instance behind a service. Not statistical: exact counts.",
			Run: endpointSeries,
		},
	}
}

// perSecond writes the rate of n requests over trafficDuration.
func perSecond(n int) string {
	return strconv.FormatFloat(float64(n)/trafficDuration.Seconds(), 'f', 0, 64) + "/s"
}

// pct writes a fraction as a percentage.
func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', -1, 64) + " %" }

// twoRoutes is the routes of the per-route checks: fast to cluster fast,
// errors to cluster errors (whose backend is asked for a 503 by every
// failEvery-th request), each with one backend named after its route.
func twoRoutes(fastN, errorsN, failEvery int) []routeSpec {
	return []routeSpec{
		{name: "fast", host: "fast.test", cluster: "fast", backends: []conformance.BackendOptions{{Name: "fast"}}, requests: fastN},
		{name: "errors", host: "errors.test", cluster: "errors", backends: []conformance.BackendOptions{{Name: "errors"}}, requests: errorsN, failEvery: failEvery},
	}
}

func routeRequestRate(e *conformance.Env) error {
	s, err := setup(e, idRouteRequestRate, twoRoutes(rateFastRequests, rateErrorsRequests, 0))
	if err != nil {
		return err
	}
	q := s.d.requests(s.rng)
	got, problems, err := s.perRoute("a request count", q)
	if err != nil {
		return err
	}
	secs := trafficDuration.Seconds()
	for i, r := range s.routes {
		want := float64(s.sent[i].sent)
		e.Figure(r.name+" request rate (Prometheus)", got[i]/secs, "req/s")
		e.Figure(r.name+" request rate (sent)", want/secs, "req/s")
		if math.Abs(got[i]-want) > rateTolerance*want {
			problems = append(problems, fmt.Sprintf("route %s: Prometheus counts %.1f requests (%.1f/s over %v), the client sent %.0f (%.1f/s), tolerance %s (%s)",
				r.name, got[i], got[i]/secs, trafficDuration, want, want/secs, pct(rateTolerance), q))
		}
	}
	return conformance.Problems(problems)
}

func routeSuccessRate(e *conformance.Env) error {
	s, err := setup(e, idRouteSuccessRate, twoRoutes(successRequests, successRequests, successFailEvery))
	if err != nil {
		return err
	}
	var problems []string
	for i, r := range s.routes {
		if s.sent[i].failed != r.wantFailures() {
			problems = append(problems, fmt.Sprintf("route %s: the client got %d 503s of %d, want %d (the backend's answers)", r.name, s.sent[i].failed, s.sent[i].sent, r.wantFailures()))
		}
	}
	if len(problems) > 0 {
		return conformance.Problems(problems)
	}
	q := s.d.success(s.rng)
	got, problems, err := s.perRoute("a success ratio", q)
	if err != nil {
		return err
	}
	for i, r := range s.routes {
		t := s.sent[i]
		want := float64(t.sent-t.failed) / float64(t.sent)
		e.Figure(r.name+" success ratio (Prometheus)", got[i]*100, "%")
		e.Figure(r.name+" success ratio (client)", want*100, "%")
		if math.IsNaN(got[i]) || math.Abs(got[i]-want) > successTolerance {
			problems = append(problems, fmt.Sprintf("route %s: Prometheus gives a success ratio of %.1f %%, the client saw %.1f %% (%d of %d not 5xx), tolerance %d points (%s)",
				r.name, got[i]*100, want*100, t.sent-t.failed, t.sent, int(successTolerance*100), q))
		}
	}
	return conformance.Problems(problems)
}

func routeP99(e *conformance.Env) error {
	routes := []routeSpec{
		{name: "fast", host: "fast.test", cluster: "fast", backends: []conformance.BackendOptions{{Name: "fast"}}, requests: p99Requests},
		{name: "slow", host: "slow.test", cluster: "slow", backends: []conformance.BackendOptions{{Name: "slow", Behaviour: conformance.Behaviour{Delay: p99Delay}}}, requests: p99Requests},
	}
	s, err := setup(e, idRouteP99, routes)
	if err != nil {
		return err
	}
	unit := s.d.latencyUnit
	delay := float64(p99Delay) / float64(unit)
	bq := s.d.buckets(s.rng)
	les, err := s.prom.byLabel(e.Context(), bq, "le", s.at)
	if err != nil {
		return fmt.Errorf("asking Prometheus for the latency buckets: %w", err)
	}
	var bounds []float64
	for le := range les {
		if b, err := strconv.ParseFloat(le, 64); err == nil && !math.IsInf(b, 1) {
			bounds = append(bounds, b)
		}
	}
	slices.Sort(bounds)
	// below is the highest bound under the delay; above is the second
	// bound above it: the slow route's requests fall in the bucket that
	// ends at the first, and a stall may push 1 % into the next.
	var below, above float64 = math.NaN(), math.NaN()
	for i, b := range bounds {
		if b < delay {
			below = b
		}
		if b > delay && math.IsNaN(above) && i+1 < len(bounds) {
			above = bounds[i+1]
		}
	}
	if math.IsNaN(below) || math.IsNaN(above) {
		return conformance.Unsupported("the latency histogram's buckets %v (in %v) do not resolve a %v delay: no bound below it or two above it", bounds, unit, p99Delay)
	}
	q := s.d.p99(s.rng)
	got, problems, err := s.perRoute("a p99 latency", q)
	if err != nil {
		return err
	}
	fast, slow := got[0], got[1]
	ms := func(v float64) float64 { return v * float64(unit) / float64(time.Millisecond) }
	clientFast, clientSlow := s.sent[0].p99(), s.sent[1].p99()
	e.Figure("fast p99 (Prometheus)", ms(fast), "ms")
	e.Figure("fast p99 (client)", float64(clientFast)/float64(time.Millisecond), "ms")
	e.Figure("slow p99 (Prometheus)", ms(slow), "ms")
	e.Figure("slow p99 (client)", float64(clientSlow)/float64(time.Millisecond), "ms")
	if len(problems) > 0 {
		return conformance.Problems(problems)
	}
	// The proxy times each request within the client's time for it, so
	// its p99 lies at most in the bucket of the client's p99: on a host
	// loaded enough to stall requests, the bounds widen to that.
	hiSlow := max(above, bucketAbove(bounds, float64(clientSlow)/float64(unit)))
	hiFast := max(below, bucketAbove(bounds, float64(clientFast)/float64(unit)))
	u := unitName(unit)
	if math.IsNaN(slow) || slow < delay || slow > hiSlow {
		problems = append(problems, fmt.Sprintf("route slow: Prometheus puts its p99 at %.3g %s, want %.3g to %.3g %s (its backend waits %v; the client's p99 %v; buckets %v) (%s)",
			slow, u, delay, hiSlow, u, p99Delay, clientSlow.Round(10*time.Microsecond), bounds, q))
	}
	if math.IsNaN(fast) || fast > hiFast {
		problems = append(problems, fmt.Sprintf("route fast: Prometheus puts its p99 at %.3g %s, want at most %.3g %s (its backend answers at once, the slow one waits %v; the client's p99 %v) (%s)",
			fast, u, hiFast, u, p99Delay, clientFast.Round(10*time.Microsecond), q))
	}
	return conformance.Problems(problems)
}

// bucketAbove is the upper bound of the bucket holding v: the lowest
// bound at or above it (+Inf above the last).
func bucketAbove(bounds []float64, v float64) float64 {
	for _, b := range bounds {
		if b >= v {
			return b
		}
	}
	return math.Inf(1)
}

// unitName is the symbol of a latency unit.
func unitName(u time.Duration) string {
	switch u {
	case time.Second:
		return "s"
	case time.Millisecond:
		return "ms"
	case time.Microsecond:
		return "µs"
	}
	return u.String()
}

func endpointSeries(e *conformance.Env) error {
	r := routeSpec{name: "app", host: "app.test", cluster: "app", requests: endpointRequests}
	for i := range endpointCount {
		r.backends = append(r.backends, conformance.BackendOptions{Name: "app-" + strconv.Itoa(i)})
	}
	s, err := setup(e, idEndpointSeries, []routeSpec{r})
	if err != nil {
		return err
	}
	q := s.d.endpoints(r.name, r.cluster, s.rng)
	got, err := s.prom.byLabel(e.Context(), q, s.d.endpointLabel, s.at)
	if err != nil {
		return fmt.Errorf("asking Prometheus for the per-endpoint requests: %w", err)
	}
	var problems []string
	for i, be := range s.backends[0] {
		key := s.d.endpointValue(i, be.Addr)
		saw := be.Count()
		e.Figure(be.Name+" requests (backend)", float64(saw), "")
		v, ok := got[key]
		if !ok {
			problems = append(problems, fmt.Sprintf("endpoint %s (%s=%q): Prometheus has no series, the backend saw %d requests (series for %v) (%s)", be.Addr, s.d.endpointLabel, key, saw, keys(got), q))
			continue
		}
		e.Figure(be.Name+" requests (Prometheus)", v, "")
		if math.Round(v) != float64(saw) {
			problems = append(problems, fmt.Sprintf("endpoint %s (%s=%q): Prometheus counts %.1f requests, its backend saw %d (%s)", be.Addr, s.d.endpointLabel, key, v, saw, q))
		}
	}
	return conformance.Problems(problems)
}

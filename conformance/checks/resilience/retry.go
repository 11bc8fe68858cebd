package resilience

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/retry"
)

// retryRequests is the number of sequential requests of the retry
// checks: round robin over three endpoints sends a third of them to the
// failing one first.
const retryRequests = 60

// fastBackoff keeps the retry checks short: the wait before a retry is
// not what they test.
var fastBackoff = config.Backoff{Base: config.Duration(time.Millisecond), Max: config.Duration(2 * time.Millisecond)}

func retry503(e *conformance.Env) error {
	return retryOne(e, conformance.Behaviour{Status: http.StatusServiceUnavailable}, retry.On503, "answers 503")
}

func retryReset(e *conformance.Env) error {
	return retryOne(e, conformance.Behaviour{Reset: true}, retry.OnReset, "closes the connection without an answer")
}

// retryOne runs a retry check: three endpoints, the first failing as bad
// says, a route retrying on condition; every request must succeed.
func retryOne(e *conformance.Env, bad conformance.Behaviour, condition, what string) error {
	bes, addrs, err := backends(e, 3, bad)
	if err != nil {
		return err
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	rt := &config.Retry{Attempts: 2, On: []string{condition}, Backoff: fastBackoff}
	cfg := &config.Config{
		Listeners: []config.Listener{listener(listen, route("app", "/", "app", 5*time.Second, rt))},
		Clusters:  []config.Cluster{cluster("app", addrs...)},
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return err
	}
	c := client(e, 5*time.Second)
	var as, failed []answer
	for range retryRequests {
		a := get(e.Context(), c, "http://"+listen+"/", nil)
		if err := e.Context().Err(); err != nil {
			return err
		}
		as = append(as, a)
		if a.err != nil || a.status != http.StatusOK {
			failed = append(failed, a)
		}
	}
	e.Figure("requests", float64(len(as)), "")
	e.Figure("bad_endpoint_attempts", float64(bes[0].Count()), "")
	switch {
	case len(failed) > 0:
		first := failed[0].err
		if first == nil {
			first = fmt.Errorf("status %d", failed[0].status)
		}
		return fmt.Errorf("%d of %d requests were not answered 200 (%s; first: %v); one endpoint of three %s and the route retries %q with 2 attempts, so every request should reach a good endpoint",
			len(failed), len(as), tally(as), first, what, condition)
	case bes[0].Count() == 0:
		return fmt.Errorf("the endpoint that %s saw none of %d requests balanced round robin over three endpoints: nothing was retried", what, len(as))
	}
	return nil
}

// The retry budget check's parameters. With the ratio below 1/(2 ×
// workers), ⌊ratio × active⌋ is 0 for any active count up to twice the
// workers, so the budget's limit is min_concurrency whatever the
// momentary count.
const (
	budgetWorkers        = 8
	budgetAttempts       = 3
	budgetRatio          = 0.05
	budgetMinConcurrency = 2
	budgetDelay          = 20 * time.Millisecond
	budgetRun            = 1500 * time.Millisecond
	// budgetMaxRequests bounds the requests of a run on a fast machine.
	budgetMaxRequests = 4000
	// budgetHeader carries each request's number to the backends.
	budgetHeader = "X-Meshbench-Seq"
	budgetPath   = "/storm"
)

// budgetLimit is the most retries the budget lets run at once: the
// active requests never exceed twice the workers.
func budgetLimit() int {
	ratio, active := budgetRatio, 2*budgetWorkers
	return max(budgetMinConcurrency, int(ratio*float64(active)))
}

// stormRecorder is the handler of the retry budget check's backends: it
// counts each request's attempts (by budgetHeader) and the retry attempts
// in progress, and answers 503 after budgetDelay.
type stormRecorder struct {
	mu       sync.Mutex
	attempts map[string]int
	inFlight int // retry attempts in progress
	peak     int
	retries  int
	total    int
	unmarked int
}

func (s *stormRecorder) serve(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(budgetHeader)
	s.mu.Lock()
	s.total++
	if id == "" {
		s.unmarked++
	}
	n := s.attempts[id]
	s.attempts[id] = n + 1
	isRetry := n > 0 && id != ""
	if isRetry {
		s.retries++
		s.inFlight++
		s.peak = max(s.peak, s.inFlight)
	}
	s.mu.Unlock()
	select {
	case <-time.After(budgetDelay):
	case <-r.Context().Done():
	}
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, "storm\n")
	if isRetry {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}
}

func retryBudget(e *conformance.Env) error {
	rec := &stormRecorder{attempts: map[string]int{}}
	var addrs []string
	for i := range 2 {
		be, err := e.StartBackend(conformance.BackendOptions{Name: fmt.Sprintf("be-%d", i), Behaviour: conformance.Behaviour{Status: http.StatusServiceUnavailable}})
		if err != nil {
			return err
		}
		be.Handle(budgetPath, rec.serve)
		addrs = append(addrs, be.Addr)
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	rt := &config.Retry{Attempts: budgetAttempts, On: []string{retry.On503}, Backoff: fastBackoff}
	cl := cluster("app", addrs...)
	cl.RetryBudget = config.RetryBudget{Ratio: budgetRatio, MinConcurrency: budgetMinConcurrency}
	cfg := &config.Config{
		Listeners: []config.Listener{listener(listen, route("app", "/", "app", 5*time.Second, rt))},
		Clusters:  []config.Cluster{cl},
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return err
	}
	c := client(e, 5*time.Second)
	var seq atomic.Int64
	var errs atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(budgetRun)
	var wg sync.WaitGroup
	for range budgetWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && e.Context().Err() == nil {
				n := seq.Add(1)
				if n > budgetMaxRequests {
					return
				}
				a := get(e.Context(), c, "http://"+listen+budgetPath, http.Header{budgetHeader: {strconv.FormatInt(n, 10)}})
				if a.err != nil || a.status != http.StatusServiceUnavailable {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d, error %v", a.status, a.err))
				}
			}
		}()
	}
	wg.Wait()
	if err := e.Context().Err(); err != nil {
		return err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	requests := len(rec.attempts)
	most := 0
	for _, n := range rec.attempts {
		most = max(most, n)
	}
	e.Figure("requests", float64(requests), "")
	e.Figure("attempts", float64(rec.total), "")
	if requests > 0 {
		e.Figure("retries_per_request", float64(rec.retries)/float64(requests), "")
	}
	e.Figure("peak_concurrent_retries", float64(rec.peak), "")
	var problems []string
	if n := errs.Load(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d requests were not answered 503 as every endpoint answers (first: %v)", n, firstErr.Load()))
	}
	if rec.unmarked > 0 {
		problems = append(problems, fmt.Sprintf("%d attempts reached the backends without the %s header the client sent", rec.unmarked, budgetHeader))
	}
	if requests == 0 {
		problems = append(problems, "no request reached the backends")
	}
	if most > budgetAttempts {
		problems = append(problems, fmt.Sprintf("a request reached the backends %d times, more than the route's %d attempts", most, budgetAttempts))
	}
	if requests > 0 && rec.retries == 0 {
		problems = append(problems, fmt.Sprintf("none of %d requests answered 503 was retried, though the route retries 503 with %d attempts", requests, budgetAttempts))
	}
	if rec.peak > budgetLimit() {
		problems = append(problems, fmt.Sprintf("%d retry attempts were in progress at the backends at once, more than the retry budget's max(min_concurrency %d, ⌊%v × at most %d active requests⌋) = %d (%d requests, %d retries)",
			rec.peak, budgetMinConcurrency, budgetRatio, 2*budgetWorkers, budgetLimit(), requests, rec.retries))
	}
	return conformance.Problems(problems)
}

// The per-try timeout check's parameters.
const (
	perTryTimeout  = 200 * time.Millisecond
	perTrySlow     = 2 * time.Second
	perTryRoute    = 5 * time.Second
	perTryRequests = 6
	// perTryFloorRequests measure the floor.
	perTryFloorRequests = 5
	// perTryFactor × perTryTimeout (plus the measured floor) bounds a
	// request that met the slow endpoint: one per-try timeout, a backoff
	// of at most 2 ms and the second attempt need little more than one.
	perTryFactor = 4
)

func perTry(e *conformance.Env) error {
	slow, err := e.StartBackend(conformance.BackendOptions{Name: "be-slow", Behaviour: conformance.Behaviour{Delay: perTrySlow}})
	if err != nil {
		return err
	}
	fast, err := e.StartBackend(conformance.BackendOptions{Name: "be-fast"})
	if err != nil {
		return err
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	floorListen, err := e.Addr()
	if err != nil {
		return err
	}
	floorListener := listener(floorListen, route("floor", "/", "fast", perTryRoute, nil))
	floorListener.Name = "floor"
	rt := &config.Retry{Attempts: 2, On: []string{retry.OnReset}, PerTryTimeout: config.Duration(perTryTimeout), Backoff: fastBackoff}
	cfg := &config.Config{
		Listeners: []config.Listener{listener(listen, route("app", "/", "app", perTryRoute, rt)), floorListener},
		Clusters:  []config.Cluster{cluster("fast", fast.Addr), cluster("app", slow.Addr, fast.Addr)},
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return err
	}
	c := client(e, perTryRoute+2*time.Second)
	// The floor: the slowest of a few requests through the proxy to the
	// fast endpoint alone.
	var floor time.Duration
	for range perTryFloorRequests {
		a := get(e.Context(), c, "http://"+floorListen+"/", nil)
		if err := e.Context().Err(); err != nil {
			return err
		}
		if a.err != nil || a.status != http.StatusOK {
			return fmt.Errorf("a request to the fast endpoint alone was answered %d (error %v)", a.status, a.err)
		}
		floor = max(floor, a.took)
	}
	e.Figure("floor", ms(floor), "ms")
	bound := perTryFactor*perTryTimeout + floor
	var worst time.Duration
	metSlow := 0
	var as []answer
	defer func() { e.Figure("slowest_request", ms(worst), "ms") }()
	for range perTryRequests {
		before := slow.Count()
		a := get(e.Context(), c, "http://"+listen+"/", nil)
		if err := e.Context().Err(); err != nil {
			return err
		}
		as = append(as, a)
		worst = max(worst, a.took)
		if a.err != nil || a.status != http.StatusOK {
			return fmt.Errorf("a request was answered %d (error %v) after %v; the route retries with a per-try timeout of %v and one of two endpoints is fast (%s so far)",
				a.status, a.err, a.took.Round(time.Millisecond), perTryTimeout, tally(as))
		}
		if slow.Count() == before {
			continue
		}
		metSlow++
		if a.took > bound {
			return fmt.Errorf("a request that met the endpoint answering after %v took %v, more than %d × the per-try timeout of %v + the slowest request to the fast endpoint alone (%v) = %v: the hung attempt was not cut off",
				perTrySlow, a.took.Round(time.Millisecond), perTryFactor, perTryTimeout, floor.Round(time.Millisecond), bound.Round(time.Millisecond))
		}
	}
	if metSlow == 0 {
		return fmt.Errorf("none of %d requests balanced round robin over two endpoints met the slow one", len(as))
	}
	return nil
}

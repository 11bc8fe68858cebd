package lifecycle

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
)

// Checks returns the profile's checks.
func Checks() []conformance.Check {
	return []conformance.Check{
		{
			ID:    "lifecycle/graceful-drain",
			Title: "Drain signal: requests in flight finish, new connections refused, the proxy exits",
			Asserts: fmt.Sprintf("A request in flight (the backend answers it after %v) when the proxy receives its drain signal (SIGTERM for the reference proxy and Caddy, "+
				"SIGQUIT for nginx, SIGUSR1 for HAProxy) completes with 200 and the backend's body; "+
				"a new connection opened %v after the signal, while that request still runs, is refused or closed without its request reaching the backend; "+
				"and the proxy exits by itself within its drain timeout (default %v) plus %v after the signal. "+
				"Pods are stopped on every rollout and scale-down: a sidecar that drops the requests it carries turns each of them into client errors, "+
				"and one that keeps accepting keeps receiving work it will not finish.",
				inFlight, probeAfter, config.DefaultDrainTimeout, exitSlack),
			Run: gracefulDrain,
		},
		{
			ID:    "lifecycle/endpoint-change",
			Title: "Endpoint set changes under load without lost requests",
			Asserts: fmt.Sprintf("A cluster reads its endpoints from a watched file (poll interval %v, policy round_robin) listing backends A and B; "+
				"%d closed-loop workers send requests for about %v; after %v the file is rewritten to B and C, and %d poll intervals after C answered its first request A is stopped. "+
				"Every request is answered 200 by a backend, C answers requests once the change is applied (within %v of it), "+
				"and A answers none later than one poll interval after C's first (requests already on their way may still land). "+
				"Pods come and go continuously in a mesh; each change of the endpoint set must reach the balancer before the old pod is gone, without a failed request.",
				pollInterval, changeWorkers, beforeChange+changeWait+settle+afterClose, beforeChange, settle/pollInterval, changeWait),
			Run: endpointChange,
		},
	}
}

// graceful-drain's timing.
const (
	// inFlight is how long the backend holds the request in flight.
	inFlight = 600 * time.Millisecond
	// probeAfter is when, after the drain signal, a new connection is
	// tried.
	probeAfter = 150 * time.Millisecond
	// exitSlack is how long past its drain timeout the proxy may take to
	// exit.
	exitSlack = 5 * time.Second
	// reachBound bounds the wait for the request to reach the backend.
	reachBound = 3 * time.Second
)

// endpoint-change's timing and load.
const (
	pollInterval  = 100 * time.Millisecond
	changeWorkers = 4
	// beforeChange is the load on A and B before the file changes.
	beforeChange = 500 * time.Millisecond
	// changeWait bounds the wait for C's first request after the change.
	changeWait = 2 * time.Second
	// settle is how long after C's first request A is stopped: three
	// poll intervals.
	settle = 3 * pollInterval
	// afterClose is the load after A stopped.
	afterClose = 700 * time.Millisecond
)

// sidecar is one outbound HTTP/1.1 listener sending every request to
// cluster "app".
func sidecar(listen string, cl config.Cluster) *config.Config {
	cl.Protocol = config.UpstreamHTTP1
	return conformance.Forward(listen, config.ProtoHTTP1, 5*time.Second, cl)
}

func gracefulDrain(e *conformance.Env) error {
	be, err := e.StartBackend(conformance.BackendOptions{Name: "be-0"})
	if err != nil {
		return err
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	p, err := e.StartProxy(sidecar(listen, config.Cluster{Balancer: config.Balancer{Policy: balancer.PolicyRoundRobin}, Endpoints: []string{be.Addr}}))
	if err != nil {
		return err
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	ans := make(chan answer, 1)
	c := &http.Client{Timeout: inFlight + 5*time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := fmt.Sprintf("http://%s/delay/%d", listen, inFlight.Milliseconds())
	go func() {
		req, err := http.NewRequestWithContext(e.Context(), http.MethodGet, url, nil)
		if err != nil {
			ans <- answer{err: err}
			return
		}
		resp, err := c.Do(req)
		if err != nil {
			ans <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ans <- answer{status: resp.StatusCode, body: string(b), err: err}
	}()
	if err := waitFor(e.Context(), reachBound, func() bool { return be.Count() >= 1 }); err != nil {
		return fmt.Errorf("the request did not reach the backend within %v", reachBound)
	}
	signalled := time.Now()
	if err := p.Drain(); err != nil {
		return fmt.Errorf("sending the drain signal: %w", err)
	}
	var problems []string

	// A new connection while the request is still in flight.
	sleep(e.Context(), probeAfter)
	probe := probeNew(listen)
	refused := 0.0
	if probe.what == "refused" {
		refused = 1
	}
	e.Figure("new connection refused", refused, "")
	if probe.served {
		problems = append(problems, fmt.Sprintf("a new connection %v after the drain signal was accepted and served (%s)", probeAfter, probe.what))
	}
	if n := be.Count(); n > 1 {
		problems = append(problems, fmt.Sprintf("the backend saw %d requests, want only the one in flight: a request sent after the drain signal was forwarded", n))
	}

	select {
	case a := <-ans:
		e.Figure("in-flight request", float64(time.Since(signalled).Milliseconds()), "ms after the signal")
		switch {
		case a.err != nil:
			problems = append(problems, fmt.Sprintf("the request in flight during the drain failed: %v", a.err))
		case a.status != http.StatusOK || strings.TrimSpace(a.body) != be.Name:
			problems = append(problems, fmt.Sprintf("the request in flight during the drain was answered %d %q, want 200 %q", a.status, a.body, be.Name))
		}
	case <-time.After(inFlight + 5*time.Second):
		problems = append(problems, fmt.Sprintf("the request in flight got no answer within %v of the drain signal", inFlight+5*time.Second))
	}

	bound := p.Config.DrainTimeout.D() + exitSlack
	select {
	case <-p.Exited():
		e.Figure("exit", float64(time.Since(signalled).Milliseconds()), "ms after the signal")
	case <-time.After(bound - time.Since(signalled)):
		problems = append(problems, fmt.Sprintf("still running %v after its drain signal (drain timeout %v)", bound, p.Config.DrainTimeout.D()))
	case <-e.Context().Done():
		return e.Context().Err()
	}
	return conformance.Problems(problems)
}

// probeResult is what a new connection to a draining proxy got.
type probeResult struct {
	// served is set when the proxy accepted the connection and answered
	// its request 2xx.
	served bool
	what   string
}

// probeNew opens a new connection to addr and sends one request on it.
func probeNew(addr string) probeResult {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return probeResult{what: "refused"}
		}
		return probeResult{what: "not connected: " + err.Error()}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "GET /probe HTTP/1.1\r\nHost: drain.test\r\nConnection: close\r\n\r\n"); err != nil {
		return probeResult{what: "closed: " + err.Error()}
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return probeResult{what: "closed without an answer: " + err.Error()}
	}
	line = strings.TrimSpace(line)
	f := strings.Fields(line)
	if len(f) >= 2 && strings.HasPrefix(f[1], "2") {
		return probeResult{served: true, what: line}
	}
	return probeResult{what: "answered " + line}
}

// waitFor polls cond every 5ms until it holds, at most bound.
func waitFor(ctx context.Context, bound time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// writeEndpoints replaces the endpoints file at path, by rename, so that
// the proxy never reads it half-written.
func writeEndpoints(path string, addrs ...string) error {
	tmp := path + ".tmp"
	data := "endpoints:\n"
	for _, a := range addrs {
		data += "  - " + a + "\n"
	}
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return fmt.Errorf("writing the endpoints file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing the endpoints file: %w", err)
	}
	return nil
}

// failure is a request of the load that failed.
type failure struct {
	at  time.Time
	err error
}

func endpointChange(e *conformance.Env) error {
	var bes []*conformance.Backend
	for _, n := range []string{"be-a", "be-b", "be-c"} {
		be, err := e.StartBackend(conformance.BackendOptions{Name: n})
		if err != nil {
			return err
		}
		bes = append(bes, be)
	}
	a, b, c := bes[0], bes[1], bes[2]
	dir, err := e.Dir()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "endpoints.yaml")
	if err := writeEndpoints(path, a.Addr, b.Addr); err != nil {
		return err
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	if _, err := e.StartProxy(sidecar(listen, config.Cluster{
		Balancer:      config.Balancer{Policy: balancer.PolicyRoundRobin},
		EndpointsFile: &config.EndpointsFile{Path: path, PollInterval: config.Duration(pollInterval)},
	})); err != nil {
		return err
	}

	// The load: closed-loop workers until stopped.
	ctx, stop := context.WithCancel(e.Context())
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: changeWorkers}}
	known := []string{a.Name, b.Name, c.Name}
	var (
		mu       sync.Mutex
		failures []failure
		answered int
		wg       sync.WaitGroup
	)
	for range changeWorkers {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := get(ctx, client, "http://"+listen+"/", known)
				mu.Lock()
				switch {
				case err != nil && ctx.Err() != nil:
				case err != nil:
					failures = append(failures, failure{at: time.Now(), err: err})
				default:
					answered++
				}
				mu.Unlock()
			}
		})
	}
	defer func() {
		stop()
		wg.Wait()
	}()

	var problems []string
	sleep(ctx, beforeChange)
	if a.Count() == 0 || b.Count() == 0 {
		problems = append(problems, fmt.Sprintf("before the change, A answered %d and B %d requests: both should share the load", a.Count(), b.Count()))
	}
	if err := writeEndpoints(path, b.Addr, c.Addr); err != nil {
		return err
	}
	changed := time.Now()
	var cFirst time.Time
	if err := waitFor(ctx, changeWait, func() bool { return c.Count() > 0 }); err != nil {
		problems = append(problems, fmt.Sprintf("C answered no request within %v of the change to B, C", changeWait))
	} else {
		cFirst = c.Requests()[0].Time
		e.Figure("change applied", float64(cFirst.Sub(changed).Milliseconds()), "ms")
	}
	sleep(ctx, settle)
	stopped := time.Now()
	a.Close()
	sleep(ctx, afterClose)
	stop()
	wg.Wait()

	if !cFirst.IsZero() {
		for _, r := range a.Requests() {
			if r.Time.After(cFirst.Add(pollInterval)) {
				problems = append(problems, fmt.Sprintf("A answered a request %v after the change was applied (C's first request): it was removed", r.Time.Sub(cFirst).Round(time.Millisecond)))
				break
			}
		}
	}
	e.Figure("requests", float64(answered), "")
	e.Figure("failed requests", float64(len(failures)), "")
	if len(failures) > 0 {
		f := failures[0]
		problems = append(problems, fmt.Sprintf("%d of %d requests failed (the first %v after the change, A stopped %v after it: %v)",
			len(failures), len(failures)+answered, f.at.Sub(changed).Round(time.Millisecond), stopped.Sub(changed).Round(time.Millisecond), f.err))
	}
	return conformance.Problems(problems)
}

// get sends a GET and checks that one of the backends named known
// answered it 200.
func get(ctx context.Context, c *http.Client, url string, known []string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s, want 200", resp.Status)
	}
	name := resp.Header.Get(conformance.HeaderBackend)
	for _, k := range known {
		if name == k {
			return nil
		}
	}
	return fmt.Errorf("answered with %s %q: none of the backends", conformance.HeaderBackend, name)
}

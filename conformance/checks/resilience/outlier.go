package resilience

import (
	"fmt"
	"net/http"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/proxy/config"
)

// The outlier ejection check's parameters.
const (
	ejectRun  = 3
	ejectBase = time.Second
	// ejectWindow is the part of the ejection the check watches, from
	// the moment the request that made the third failure was sent (the
	// ejection cannot start before); the 200 ms left of the ejection
	// are a margin for the proxy's timers.
	ejectWindow = 800 * time.Millisecond
	// ejectMinRequests is the fewest requests the window must hold for
	// the count to mean something.
	ejectMinRequests = 10
	// ejectPace spaces the requests of the window and of the return.
	ejectPace = 10 * time.Millisecond
	// ejectReturnBound bounds the wait for the healed endpoint's return,
	// from its ejection.
	ejectReturnBound = ejectBase + 3*time.Second
	// ejectMaxFirst bounds the requests that bring the endpoint to its
	// third failure (round robin over three needs 7 to 9).
	ejectMaxFirst = 30
)

func outlierEjection(e *conformance.Env) error {
	bes, addrs, err := backends(e, 3, conformance.Behaviour{Status: http.StatusServiceUnavailable})
	if err != nil {
		return err
	}
	bad := bes[0]
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	cl := cluster("app", addrs...)
	cl.OutlierDetection = &config.OutlierDetection{Consecutive5xx: ejectRun, ConsecutiveGatewayFailure: ejectRun,
		BaseEjectionTime: config.Duration(ejectBase), MaxEjectionPercent: 50}
	cfg := &config.Config{
		Listeners: []config.Listener{listener(listen, route("app", "/", "app", 5*time.Second, nil))},
		Clusters:  []config.Cluster{cl},
	}
	if _, err := e.StartProxy(cfg); err != nil {
		return err
	}
	c := client(e, 5*time.Second)
	url := "http://" + listen + "/"
	send := func() error {
		a := get(e.Context(), c, url, nil)
		if err := e.Context().Err(); err != nil {
			return err
		}
		if a.err != nil {
			return fmt.Errorf("a request failed: %w", a.err)
		}
		return nil
	}
	// ejected is when the request that made the third failure was sent:
	// the proxy cannot have ejected the endpoint sooner, so the ejection
	// lasts at least until ejected + ejectBase.
	var ejected time.Time
	for i := 0; bad.Count() < ejectRun; i++ {
		if i == ejectMaxFirst {
			return fmt.Errorf("the failing endpoint saw %d of %d requests balanced round robin over three endpoints, want %d", bad.Count(), i, ejectRun)
		}
		ejected = time.Now()
		if err := send(); err != nil {
			return err
		}
	}
	base := bad.Count()
	sent := 0
	for time.Since(ejected) < ejectWindow {
		if err := send(); err != nil {
			return err
		}
		sent++
		time.Sleep(ejectPace)
	}
	during := bad.Count() - base
	e.Figure("requests_during_ejection", float64(sent), "")
	e.Figure("to_ejected_endpoint", float64(during), "")
	switch {
	case during > 0:
		return fmt.Errorf("the endpoint that failed %d requests in a row received %d of the %d requests sent in the %v after its third failure (outlier_detection: %d consecutive failures eject it for %v)",
			ejectRun, during, sent, ejectWindow, ejectRun, ejectBase)
	case sent < ejectMinRequests:
		return fmt.Errorf("only %d requests were sent in the %v of the ejection watched, want at least %d: the proxy answered too slowly for the check", sent, ejectWindow, ejectMinRequests)
	}
	bad.Set(conformance.Behaviour{})
	base = bad.Count()
	for bad.Count() == base {
		if time.Since(ejected) > ejectReturnBound {
			return fmt.Errorf("the healed endpoint received no request within %v of its ejection for %v", ejectReturnBound, ejectBase)
		}
		if err := send(); err != nil {
			return err
		}
		time.Sleep(ejectPace)
	}
	e.Figure("time_to_return", ms(time.Since(ejected)), "ms")
	return nil
}

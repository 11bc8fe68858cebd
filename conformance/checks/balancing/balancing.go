package balancing

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
)

// Checks returns the profile's checks.
func Checks() []conformance.Check {
	return []conformance.Check{
		{
			ID:    "balancing/round-robin-even",
			Title: "Round robin spreads requests evenly",
			Asserts: fmt.Sprintf("With three endpoints and policy round_robin, %d sequential requests are all answered and spread evenly: "+
				"a chi-square goodness-of-fit test of the per-endpoint counts against the uniform distribution stays at or below %.2f "+
				"(2 degrees of freedom, α = 1e-3). An exact round robin scores 0, so it never fails; a balancer that draws endpoints uniformly at random "+
				"fails with probability 1e-3; one that sends everything to one endpoint scores %d and always fails. "+
				"Round robin is the baseline every mesh offers, and its evenness is what capacity planning of identical replicas assumes.",
				evenRequests, chiSquareCritical, 2*evenRequests),
			Run: roundRobinEven,
		},
		{
			ID:    "balancing/least-request-busy",
			Title: "Least request avoids a busy endpoint",
			Asserts: fmt.Sprintf("With three endpoints, one answering after %v and two at once, and policy least_request, %d closed-loop workers send requests for at least %v "+
				"(and until %d are answered, at most %v); every request is answered and the busy endpoint answers at most %s of them, against 1/3 under round robin. "+
				"Test: the busy endpoint's count as a binomial with n ≥ %d. The power of two choices picks the busy endpoint when both draws are it (1/9 with three endpoints, "+
				"drawing with replacement) or when it has no more requests in flight than the other one drawn, which is rare here; "+
				"at p = 0.14 the chance of exceeding the bound is 9e-5 (the false-fail rate), while round robin (p = 1/3) stays under it with probability 3e-11. "+
				"Requests vary in cost and replicas stall; a mesh balancer must steer new requests to the replicas that are not busy.",
				busyDelay, busyWorkers, busyMinDuration, busyMinRequests, busyMaxDuration, busyBoundText, busyMinRequests),
			Run: leastRequestBusy,
		},
		{
			ID:    "balancing/latency-aware-slow",
			Title: "Latency-aware balancing avoids a slow endpoint",
			Needs: []string{balancer.PolicyPeakEWMA},
			Asserts: fmt.Sprintf("With three endpoints, one answering %v later than the others, and policy peak_ewma, %d sequential requests (one at a time, so requests in flight "+
				"cannot tell the endpoints apart; only latency can) are all answered and the slow endpoint answers at most %s of them, against 1/3 under round robin. "+
				"Test: the slow endpoint's count as a binomial with n = %d. A latency-aware balancer sends the slow endpoint only the few requests that measure it and "+
				"those it gets once its estimate has decayed — well under 5 %%; at p = 0.05 the chance of exceeding the bound is 3e-8, and 1.5e-4 even at p = 0.08 (the false-fail rate), "+
				"while round robin sends it exactly 1/3. "+
				"A replica that is slow but not failing (a noisy neighbour, a cold cache, a garbage collection) gets its full share from every load-blind policy; "+
				"only a latency-aware one spares the callers its latency.",
				slowDelay, slowRequests, slowBoundText, slowRequests),
			Run: latencyAwareSlow,
		},
		{
			ID:    "balancing/hash-sticky",
			Title: "Ring hash keeps a key on one endpoint",
			Asserts: stickyAsserts("ring_hash") +
				" Session affinity (a user's cache, a tenant's shard) in a mesh rests on a hash policy keeping each key on one replica.",
			Run: hashSticky(balancer.PolicyRingHash),
		},
		{
			ID:    "balancing/maglev-sticky",
			Title: "Maglev keeps a key on one endpoint",
			Needs: []string{balancer.PolicyMaglev},
			Asserts: stickyAsserts("maglev") +
				" Maglev is the hash policy of choice with many endpoints; affinity must hold with it as with ring_hash.",
			Run: hashSticky(balancer.PolicyMaglev),
		},
		{
			ID:    "balancing/hash-keys-moved",
			Title: "Ring hash moves few keys when an endpoint leaves",
			Asserts: movedAsserts("ring_hash") +
				" When a pod leaves, consistent hashing keeps every other pod's keys (and their warm caches) where they were; a modulo or load-blind mapping reshuffles most of them.",
			Run: hashKeysMoved(balancer.PolicyRingHash),
		},
		{
			ID:    "balancing/maglev-keys-moved",
			Title: "Maglev moves few keys when an endpoint leaves",
			Needs: []string{balancer.PolicyMaglev},
			Asserts: movedAsserts("maglev") +
				" Maglev trades a little extra movement (a fraction of a percent in its paper) for an even spread; it must still keep the other endpoints' keys.",
			Run: hashKeysMoved(balancer.PolicyMaglev),
		},
	}
}

// Round robin's sample and test.
const (
	// evenRequests is the sample: a multiple of 3, so that an exact round
	// robin gives each endpoint the same count (statistic 0).
	evenRequests = 300
	// chiSquareCritical is the chi-square quantile of 2 degrees of
	// freedom at α = 1e-3: −2·ln(1e-3) = 13.8155 (the distribution with 2
	// degrees of freedom has the tail exp(−x/2)). A uniformly random
	// balancer exceeds it with probability 1e-3.
	chiSquareCritical = 13.82
)

// The bounds on the share of the busy endpoint (least-request-busy) and
// of the slow one (latency-aware-slow), against round robin's 1/3.
const (
	busyBound     = 1.0 / 5
	busyBoundText = "1/5"
	slowBound     = 1.0 / 6
	slowBoundText = "1/6"
)

// least-request-busy's load.
const (
	// busyDelay holds each request of the busy endpoint.
	busyDelay = 100 * time.Millisecond
	// busyWorkers send requests in a closed loop (one at a time each).
	busyWorkers = 8
	// busyMinDuration and busyMinRequests: the load runs for at least
	// busyMinDuration and until busyMinRequests requests are answered.
	// Two choices drawn with replacement among three endpoints are both
	// the busy one with probability 1/9; with ties and noise its share
	// stays below p = 0.14, which exceeds busyBound with probability
	// P(Bin(500, 0.14) > 100) = 9.1e-5 (the false-fail rate, falling
	// with larger n); round robin (p = 1/3) stays within it with
	// probability P(Bin(500, 1/3) ≤ 100) = 2.9e-11.
	busyMinDuration = 2 * time.Second
	busyMinRequests = 500
	// busyMaxDuration bounds the load when the machine is slow.
	busyMaxDuration = 4 * time.Second
)

// latency-aware-slow's load.
const (
	// slowDelay is how much later the slow endpoint answers: above
	// peak_ewma's default_rtt (30ms) and above the scheduling stalls a
	// shared test machine gives the fast endpoints.
	slowDelay = 40 * time.Millisecond
	// slowRequests is the sample: P(Bin(150, 0.05) > 25) = 3.2e-8 and
	// P(Bin(150, 0.08) > 25) = 1.5e-4 (false fail); round robin gives the
	// slow endpoint exactly 50.
	slowRequests = 150
)

// Hash policies' samples.
const (
	// hashHeader is the header the hash policies key on.
	hashHeader = "X-User"
	// stickyKeys keys are each sent stickyRounds times, in rounds over
	// all keys. A good hash leaves one of 3 endpoints without a key with
	// probability at most 3·(2/3)^60 = 8e-11 for even shares, and 3·0.75^60
	// = 1e-7 even if an endpoint's share of the hash space were only 1/4:
	// the false-fail rate. A random balancer keeps one key's 4 requests on
	// one endpoint with probability 1/27, all 60 with (1/27)^60.
	stickyKeys   = 60
	stickyRounds = 4
	// movedKeys keys are mapped on three endpoints, then on the two left
	// when the middle one is removed.
	movedKeys = 300
	// movedBound is the largest share of the remaining endpoints' keys
	// that may move. Consistent hashing moves none (ring_hash) or a
	// fraction of a percent (maglev); modulo hashing moves about half of
	// them from 3 to 2 endpoints, as does any balancer that ignores the
	// key: with about 200 such keys each moving with probability 1/2,
	// P(at most 10 % move) = P(Bin(200, 1/2) ≤ 20) = 1e-33.
	movedBound = 0.10
)

func stickyAsserts(policy string) string {
	return fmt.Sprintf("With three endpoints and policy %s on the header %s, %d keys each sent %d times (in rounds over all keys) are all answered, "+
		"every key always by the same endpoint, and every endpoint gets at least one key. "+
		"A good hash leaves an endpoint without any of the %d keys with probability 8e-11 (1e-7 even if its share of the hash space were 1/4): the false-fail rate; "+
		"a balancer that ignores the key keeps all of them in place with probability (1/27)^60.",
		policy, hashHeader, stickyKeys, stickyRounds, stickyKeys)
}

func movedAsserts(policy string) string {
	return fmt.Sprintf("With policy %s on the header %s, %d keys are mapped on three endpoints by one proxy, then by a second proxy (a new listener) "+
		"configured with the same endpoints but the middle one, as when a pod leaves; of the keys that were not on the removed endpoint, at most %.0f %% land elsewhere. "+
		"Consistent hashing moves none of them (ring_hash) or a fraction of a percent (maglev), so a correct proxy never fails (no random element); "+
		"modulo hashing and key-blind balancers move about half of them, and stay within the bound with probability 1e-33 (about 200 keys, each moving with probability 1/2).",
		policy, hashHeader, movedKeys, movedBound*100)
}

// sidecar is one outbound listener sending every request to cluster
// "app" with balancer b over endpoints.
func sidecar(listen string, b config.Balancer, endpoints ...string) *config.Config {
	return conformance.Forward(listen, config.ProtoHTTP1, 5*time.Second, config.Cluster{Protocol: config.UpstreamHTTP1, Balancer: b, Endpoints: endpoints})
}

// backends starts one backend per name, with beh[i] as the i-th one's
// behaviour when given.
func backends(e *conformance.Env, names []string, beh ...conformance.Behaviour) ([]*conformance.Backend, []string, error) {
	var bes []*conformance.Backend
	var addrs []string
	for i, n := range names {
		o := conformance.BackendOptions{Name: n}
		if i < len(beh) {
			o.Behaviour = beh[i]
		}
		be, err := e.StartBackend(o)
		if err != nil {
			return nil, nil, fmt.Errorf("starting backend %s: %w", n, err)
		}
		bes = append(bes, be)
		addrs = append(addrs, be.Addr)
	}
	return bes, addrs, nil
}

// start starts backends named names and a proxy with balancer b over
// them; it returns the proxy's listener URL.
func start(e *conformance.Env, b config.Balancer, names []string, beh ...conformance.Behaviour) ([]*conformance.Backend, string, error) {
	bes, addrs, err := backends(e, names, beh...)
	if err != nil {
		return nil, "", err
	}
	listen, err := e.Addr()
	if err != nil {
		return nil, "", err
	}
	if _, err := e.StartProxy(sidecar(listen, b, addrs...)); err != nil {
		return nil, "", err
	}
	return bes, "http://" + listen + "/", nil
}

// newClient is an HTTP/1.1 client keeping up to conns idle connections
// to the proxy.
func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxIdleConns: conns}}
}

// get sends a GET with the header key set to value (when key is not "")
// and returns the name of the backend that answered it with 200.
func get(ctx context.Context, c *http.Client, url, key, value string, known []string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if key != "" {
		req.Header.Set(key, value)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s, want 200", resp.Status)
	}
	name := resp.Header.Get(conformance.HeaderBackend)
	for _, k := range known {
		if name == k {
			return name, nil
		}
	}
	return "", fmt.Errorf("answered with %s %q: none of the cluster's backends", conformance.HeaderBackend, name)
}

// shares records each backend's share of counts as a figure and returns
// them as text ("a 100, b 100, c 100").
func shares(e *conformance.Env, names []string, counts map[string]int, n int) string {
	var parts []string
	for _, name := range names {
		e.Figure("share "+name, float64(counts[name])/float64(n), "")
		parts = append(parts, fmt.Sprintf("%s %d", name, counts[name]))
	}
	return strings.Join(parts, ", ")
}

func roundRobinEven(e *conformance.Env) error {
	names := []string{"be-a", "be-b", "be-c"}
	_, url, err := start(e, config.Balancer{Policy: balancer.PolicyRoundRobin}, names)
	if err != nil {
		return err
	}
	c := newClient(1)
	counts := map[string]int{}
	for i := range evenRequests {
		name, err := get(e.Context(), c, url, "", "", names)
		if err != nil {
			return fmt.Errorf("request %d of %d: %w", i+1, evenRequests, err)
		}
		counts[name]++
	}
	expected := float64(evenRequests) / float64(len(names))
	chi := 0.0
	for _, name := range names {
		d := float64(counts[name]) - expected
		chi += d * d / expected
	}
	text := shares(e, names, counts, evenRequests)
	e.Figure("chi-square", chi, "")
	if chi > chiSquareCritical {
		return fmt.Errorf("%d sequential requests split %s: chi-square %.1f against uniform exceeds %.2f (2 degrees of freedom, α = 1e-3): not an even spread",
			evenRequests, text, chi, chiSquareCritical)
	}
	return nil
}

func leastRequestBusy(e *conformance.Env) error {
	names := []string{"be-busy", "be-b", "be-c"}
	_, url, err := start(e, config.Balancer{Policy: balancer.PolicyLeastRequest}, names, conformance.Behaviour{Delay: busyDelay})
	if err != nil {
		return err
	}
	counts, n, err := closedLoop(e.Context(), newClient(busyWorkers), url, names)
	if err != nil {
		return err
	}
	text := shares(e, names, counts, n)
	e.Figure("requests", float64(n), "")
	if n < busyMinRequests {
		return fmt.Errorf("only %d requests answered in %v with %d workers (%s), want at least %d for the test", n, busyMaxDuration, busyWorkers, text, busyMinRequests)
	}
	if share := float64(counts[names[0]]) / float64(n); share > busyBound {
		return fmt.Errorf("the busy endpoint (answering after %v) got %.1f %% of %d requests (%s), want at most %s (round robin gives it 1/3)",
			busyDelay, 100*share, n, text, busyBoundText)
	}
	return nil
}

// closedLoop runs busyWorkers workers, each sending one request after
// the other, for busyMinDuration and until busyMinRequests are answered,
// at most busyMaxDuration. It returns the answers per backend and their
// number; any request that fails ends it with an error.
func closedLoop(ctx context.Context, c *http.Client, url string, names []string) (map[string]int, int, error) {
	ctx, cancel := context.WithTimeout(ctx, busyMaxDuration)
	defer cancel()
	var (
		mu      sync.Mutex
		counts  = map[string]int{}
		n       int
		failure error
		wg      sync.WaitGroup
	)
	begin := time.Now()
	for range busyWorkers {
		wg.Go(func() {
			for ctx.Err() == nil {
				name, err := get(ctx, c, url, "", "", names)
				mu.Lock()
				switch {
				case err != nil && ctx.Err() != nil:
					// The deadline cut the request short: not a failure.
				case err != nil:
					if failure == nil {
						failure = fmt.Errorf("request %d under load: %w", n+1, err)
					}
					cancel()
				default:
					counts[name]++
					n++
					if n >= busyMinRequests && time.Since(begin) >= busyMinDuration {
						cancel()
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failure != nil {
		return nil, 0, failure
	}
	return counts, n, nil
}

func latencyAwareSlow(e *conformance.Env) error {
	names := []string{"be-slow", "be-b", "be-c"}
	_, url, err := start(e, config.Balancer{Policy: balancer.PolicyPeakEWMA}, names, conformance.Behaviour{Delay: slowDelay})
	if err != nil {
		return err
	}
	c := newClient(1)
	counts := map[string]int{}
	for i := range slowRequests {
		name, err := get(e.Context(), c, url, "", "", names)
		if err != nil {
			return fmt.Errorf("request %d of %d: %w", i+1, slowRequests, err)
		}
		counts[name]++
	}
	text := shares(e, names, counts, slowRequests)
	if share := float64(counts[names[0]]) / slowRequests; share > slowBound {
		return fmt.Errorf("the slow endpoint (%v later) got %.1f %% of %d sequential requests (%s), want at most %s (round robin gives it 1/3)",
			slowDelay, 100*share, slowRequests, text, slowBoundText)
	}
	return nil
}

// hashSticky returns the sticky check of a hash policy.
func hashSticky(policy string) func(*conformance.Env) error {
	return func(e *conformance.Env) error {
		names := []string{"be-a", "be-b", "be-c"}
		_, url, err := start(e, config.Balancer{Policy: policy, HashHeader: hashHeader}, names)
		if err != nil {
			return err
		}
		c := newClient(1)
		first := map[string]string{}
		moved := map[string]bool{}
		var problems []string
		for round := range stickyRounds {
			for k := range stickyKeys {
				key := fmt.Sprintf("user-%d", k)
				name, err := get(e.Context(), c, url, hashHeader, key, names)
				if err != nil {
					return fmt.Errorf("round %d, %s: %s: %w", round+1, hashHeader, key, err)
				}
				switch was, ok := first[key]; {
				case !ok:
					first[key] = name
				case was != name && !moved[key]:
					moved[key] = true
					problems = append(problems, fmt.Sprintf("%s went to %s, then to %s in round %d", key, was, name, round+1))
				}
			}
		}
		perBackend := map[string]int{}
		for _, name := range first {
			perBackend[name]++
		}
		var keys []string
		for _, name := range names {
			e.Figure("keys on "+name, float64(perBackend[name]), "")
			keys = append(keys, fmt.Sprintf("%s %d", name, perBackend[name]))
		}
		e.Figure("keys not sticky", float64(len(problems)), "")
		if len(problems) > 0 {
			shown := problems[:min(len(problems), 3)]
			return fmt.Errorf("%d of %d keys did not stay on one endpoint over %d rounds (%s ...)", len(problems), stickyKeys, stickyRounds, strings.Join(shown, "; "))
		}
		for _, name := range names {
			if perBackend[name] == 0 {
				return fmt.Errorf("%d keys spread %s: endpoint %s got none", stickyKeys, strings.Join(keys, ", "), name)
			}
		}
		return nil
	}
}

// hashKeysMoved returns the keys-moved check of a hash policy.
func hashKeysMoved(policy string) func(*conformance.Env) error {
	return func(e *conformance.Env) error {
		names := []string{"be-a", "be-b", "be-c"}
		bes, addrs, err := backends(e, names)
		if err != nil {
			return err
		}
		b := config.Balancer{Policy: policy, HashHeader: hashHeader}
		before, err := mapKeys(e, b, names, addrs)
		if err != nil {
			return fmt.Errorf("on three endpoints: %w", err)
		}
		// The middle endpoint leaves, as a pod does.
		removed := bes[1].Name
		after, err := mapKeys(e, b, []string{names[0], names[2]}, []string{addrs[0], addrs[2]})
		if err != nil {
			return fmt.Errorf("on two endpoints (%s removed): %w", removed, err)
		}
		stayed, moved, onRemoved := 0, 0, 0
		var examples []string
		for k, was := range before {
			if was == removed {
				onRemoved++
				continue
			}
			stayed++
			if after[k] != was {
				moved++
				if len(examples) < 3 {
					examples = append(examples, fmt.Sprintf("user-%d %s→%s", k, was, after[k]))
				}
			}
		}
		e.Figure("keys on the removed endpoint", float64(onRemoved), "")
		if stayed == 0 || onRemoved == 0 {
			return fmt.Errorf("of %d keys, %d were on %s and %d on the others: the hash does not spread keys over the three endpoints", movedKeys, onRemoved, removed, stayed)
		}
		share := float64(moved) / float64(stayed)
		e.Figure("moved share", share, "")
		if share > movedBound {
			return fmt.Errorf("with %s removed, %d of the %d keys of the remaining endpoints moved (%.1f %%, want at most %.0f %%; e.g. %s): not consistent hashing",
				removed, moved, stayed, 100*share, 100*movedBound, strings.Join(examples, ", "))
		}
		return nil
	}
}

// mapKeys starts a proxy with balancer b over addrs and returns the
// backend each of movedKeys keys goes to.
func mapKeys(e *conformance.Env, b config.Balancer, names, addrs []string) (map[int]string, error) {
	listen, err := e.Addr()
	if err != nil {
		return nil, err
	}
	if _, err := e.StartProxy(sidecar(listen, b, addrs...)); err != nil {
		return nil, err
	}
	c := newClient(1)
	out := make(map[int]string, movedKeys)
	for k := range movedKeys {
		name, err := get(e.Context(), c, "http://"+listen+"/", hashHeader, fmt.Sprintf("user-%d", k), names)
		if err != nil {
			return nil, fmt.Errorf("%s: user-%d: %w", hashHeader, k, err)
		}
		out[k] = name
	}
	return out, nil
}

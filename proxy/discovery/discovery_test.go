package discovery

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitTimeout bounds every wait in these tests; they normally take
// milliseconds.
const waitTimeout = 10 * time.Second

// recorder collects the sets a Source delivers and checks that update is
// never called concurrently.
type recorder struct {
	t       *testing.T
	ch      chan []Endpoint
	running atomic.Bool
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, ch: make(chan []Endpoint, 100)}
}

func (r *recorder) update(eps []Endpoint) {
	if !r.running.CompareAndSwap(false, true) {
		r.t.Error("update called concurrently")
	}
	defer r.running.Store(false)
	r.ch <- eps
}

// next waits for the next delivered set and checks that it is want.
func (r *recorder) next(want ...Endpoint) {
	r.t.Helper()
	select {
	case got := <-r.ch:
		if want == nil {
			want = []Endpoint{}
		}
		if got == nil || !slices.Equal(got, want) {
			r.t.Fatalf("update %v, want %v", got, want)
		}
	case <-time.After(waitTimeout):
		r.t.Fatalf("no update within %s, want %v", waitTimeout, want)
	}
}

// none checks that no set was delivered that has not been consumed.
func (r *recorder) none() {
	r.t.Helper()
	select {
	case got := <-r.ch:
		r.t.Fatalf("unexpected update %v", got)
	default:
	}
}

// start runs src until the test ends and checks that Run then returns nil.
func start(t *testing.T, src Source, r *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, r.update) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after its context ended, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %s of its context ending", waitTimeout)
		}
	})
}

// eventually polls cond until it holds, failing the test after waitTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logBuffer is a concurrency-safe log destination.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) count(s string) int { return strings.Count(b.String(), s) }

func eps(addrs ...string) []Endpoint {
	out := make([]Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = Endpoint{Addr: a, Weight: 1}
	}
	return out
}

func TestStatic(t *testing.T) {
	in := []Endpoint{{"b:80", 2}, {"a:80", 0}, {"b:80", 5}, {"c:80", -1}}
	r := newRecorder(t)
	start(t, Static(in), r)
	r.next(Endpoint{"a:80", 1}, Endpoint{"b:80", 2}, Endpoint{"c:80", 1})
	if in[0] != (Endpoint{"b:80", 2}) || in[1] != (Endpoint{"a:80", 0}) {
		t.Errorf("Static changed its argument: %v", in)
	}
}

func TestStaticEmpty(t *testing.T) {
	r := newRecorder(t)
	start(t, Static(nil), r)
	r.next()
}

func TestStaticRunReturnsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	if err := Static(eps("a:1")).Run(ctx, func([]Endpoint) { calls++ }); err != nil || calls != 1 {
		t.Fatalf("Run = %v after %d updates, want nil after 1", err, calls)
	}
}

func TestCanonicalAddr(t *testing.T) {
	for _, tc := range []struct{ in, want, problem string }{
		{"127.0.0.1:8080", "127.0.0.1:8080", ""},
		{"127.0.0.1:08080", "127.0.0.1:8080", ""},
		{"[::1]:80", "[::1]:80", ""},
		{"[FD00:0:0::1]:80", "[fd00::1]:80", ""},
		{"[fe80::1%eth0]:80", "[fe80::1%eth0]:80", ""},
		{"Backend-1.Example.:443", "backend-1.example.:443", ""},
		{"svc_a:1", "svc_a:1", ""},
		{"127.0.0.1:65535", "127.0.0.1:65535", ""},
		{"127.0.0.1", "", "not host:port"},
		{"::1:80", "", "not host:port"},
		{"[127.0.0.1]:80", "", "not host:port"},
		{"[::1:80", "", "not host:port"},
		{":80", "", "not host:port"},
		{"a:", "", "not host:port"},
		{"a:0", "", `port "0" is not in 1..65535`},
		{"a:65536", "", `port "65536" is not in 1..65535`},
		{"a:+80", "", `port "+80" is not in 1..65535`},
		{"a:http", "", `port "http" is not in 1..65535`},
		{"10.0.0:80", "", `invalid IP address "10.0.0"`},
		{"256.0.0.1:80", "", `invalid IP address "256.0.0.1"`},
		{"a..b:80", "", `invalid host name "a..b"`},
		{"-a:80", "", `invalid host name "-a"`},
		{"a b:80", "", `invalid host name "a b"`},
		{"http://a:80", "", "not host:port"},
	} {
		got, problem := canonicalAddr(tc.in)
		if got != tc.want || !strings.HasPrefix(problem, tc.problem) || (tc.problem == "") != (problem == "") {
			t.Errorf("canonicalAddr(%q) = %q, %q; want %q, %q", tc.in, got, problem, tc.want, tc.problem)
		}
	}
}

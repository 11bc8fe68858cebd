package discoverytest

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/discovery"
)

// WaitTimeout bounds every wait of the sources' tests; they normally take
// milliseconds.
const WaitTimeout = 10 * time.Second

// Recorder collects the sets a Source delivers and checks that update is
// never called concurrently.
type Recorder struct {
	t       *testing.T
	ch      chan []discovery.Endpoint
	running atomic.Bool
}

// NewRecorder returns a Recorder that fails t.
func NewRecorder(t *testing.T) *Recorder {
	return &Recorder{t: t, ch: make(chan []discovery.Endpoint, 100)}
}

// Update is the update function to give a Source's Run.
func (r *Recorder) Update(eps []discovery.Endpoint) {
	if !r.running.CompareAndSwap(false, true) {
		r.t.Error("update called concurrently")
	}
	defer r.running.Store(false)
	r.ch <- eps
}

// Next waits for the next delivered set and checks that it is want.
func (r *Recorder) Next(want ...discovery.Endpoint) {
	r.t.Helper()
	select {
	case got := <-r.ch:
		if want == nil {
			want = []discovery.Endpoint{}
		}
		if got == nil || !slices.Equal(got, want) {
			r.t.Fatalf("update %v, want %v", got, want)
		}
	case <-time.After(WaitTimeout):
		r.t.Fatalf("no update within %s, want %v", WaitTimeout, want)
	}
}

// None checks that no set was delivered that has not been consumed.
func (r *Recorder) None() {
	r.t.Helper()
	select {
	case got := <-r.ch:
		r.t.Fatalf("unexpected update %v", got)
	default:
	}
}

// Start runs src until the test ends and checks that Run then returns nil.
func Start(t *testing.T, src discovery.Source, r *Recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, r.Update) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after its context ended, want nil", err)
			}
		case <-time.After(WaitTimeout):
			t.Errorf("Run did not return within %s of its context ending", WaitTimeout)
		}
	})
}

// Eventually polls cond until it holds, failing the test after WaitTimeout.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Eps returns endpoints of weight 1 at addrs.
func Eps(addrs ...string) []discovery.Endpoint {
	out := make([]discovery.Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = discovery.Endpoint{Addr: a, Weight: 1}
	}
	return out
}

// LogBuffer is a concurrency-safe log destination.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns how many times s was logged.
func (b *LogBuffer) Count(s string) int { return strings.Count(b.String(), s) }

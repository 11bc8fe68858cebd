package discovery_test

import (
	"context"
	"testing"

	"github.com/meshbench/meshbench/proxy/discovery"
	"github.com/meshbench/meshbench/proxy/discovery/discoverytest"
)

func TestStatic(t *testing.T) {
	in := []discovery.Endpoint{{"b:80", 2}, {"a:80", 0}, {"b:80", 5}, {"c:80", -1}}
	r := discoverytest.NewRecorder(t)
	discoverytest.Start(t, discovery.Static(in), r)
	r.Next(discovery.Endpoint{"a:80", 1}, discovery.Endpoint{"b:80", 2}, discovery.Endpoint{"c:80", 1})
	if in[0] != (discovery.Endpoint{"b:80", 2}) || in[1] != (discovery.Endpoint{"a:80", 0}) {
		t.Errorf("discovery.Static changed its argument: %v", in)
	}
}

func TestStaticEmpty(t *testing.T) {
	r := discoverytest.NewRecorder(t)
	discoverytest.Start(t, discovery.Static(nil), r)
	r.Next()
}

func TestStaticRunReturnsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	if err := discovery.Static(discoverytest.Eps("a:1")).Run(ctx, func([]discovery.Endpoint) { calls++ }); err != nil || calls != 1 {
		t.Fatalf("Run = %v after %d updates, want nil after 1", err, calls)
	}
}

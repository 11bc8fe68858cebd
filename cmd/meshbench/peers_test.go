package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestPeersVerb(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"peers"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"nginx\n", "haproxy\n", "caddy\n", "envoy\n", "n/a:       peak_ewma", "package:   haproxy (Debian)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("meshbench peers: no %q in\n%s", want, out.String())
		}
	}
	if code := run(context.Background(), []string{"peers", "extra"}, &out, &errb); code != 2 {
		t.Errorf("meshbench peers extra: exit %d, want 2", code)
	}
}

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

func TestPeerImageFlag(t *testing.T) {
	f := peerImageFlag{}
	if err := f.Set("envoy=registry.local/envoy:v1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("haproxy=registry.local/haproxy:2.6,/usr/sbin/haproxy"); err != nil {
		t.Fatal(err)
	}
	if got := f["envoy"]; got.Ref != "registry.local/envoy:v1" || got.Binary != "/usr/local/bin/envoy" {
		t.Errorf("envoy: %+v", got)
	}
	if got := f["haproxy"]; got.Ref != "registry.local/haproxy:2.6" || got.Binary != "/usr/sbin/haproxy" {
		t.Errorf("haproxy: %+v", got)
	}
	for _, bad := range []string{"linkerd=img", "envoy", "envoy=", "nginx=img,bin/nginx"} {
		if err := f.Set(bad); err == nil {
			t.Errorf("--peer-image %s accepted", bad)
		}
	}
}

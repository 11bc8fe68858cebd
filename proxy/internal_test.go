package proxy

import (
	"net/http"
	"testing"
	"time"
)

func TestGRPCTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"100m", 100 * time.Millisecond, true},
		{"1S", time.Second, true},
		{"2H", 2 * time.Hour, true},
		{"5u", 5 * time.Microsecond, true},
		{"99999999n", 99999999, true},
		{"123456789m", 0, false}, // more than 8 digits
		{"10", 0, false},
		{"m", 0, false},
		{"-1S", 0, false},
		{"1x", 0, false},
	} {
		got, ok := parseGRPCTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseGRPCTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, d := range []time.Duration{1, 99 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Hour, 200 * time.Hour} {
		s := formatGRPCTimeout(d)
		back, ok := parseGRPCTimeout(s)
		if !ok || back > d || back < d-d/1000 {
			t.Errorf("formatGRPCTimeout(%v) = %q, parses back to %v", d, s, back)
		}
	}
}

func TestHopHeaderRemoval(t *testing.T) {
	src := http.Header{
		"Connection": {"X-A, x-b", "close"}, "X-A": {"1"}, "X-B": {"2"}, "X-C": {"3"},
		"Keep-Alive": {"t"}, "Transfer-Encoding": {"chunked"}, "Upgrade": {"h2c"}, "Te": {"gzip"},
	}
	dst := http.Header{}
	copyResponseHeader(dst, src)
	if len(dst) != 1 || dst.Get("X-C") != "3" {
		t.Errorf("after removal: %v", dst)
	}
	if !hasToken([]string{"deflate, trailers;q=1"}, "trailers") || hasToken([]string{"gzip"}, "trailers") {
		t.Error("hasToken")
	}
}

func TestRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if len(id) != 36 || id[14] != '4' || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

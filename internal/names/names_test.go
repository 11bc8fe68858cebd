package names

import "testing"

func TestDNSLabel(t *testing.T) {
	for s, want := range map[string]bool{
		"echo": true, "echo-1": true, "a": true, "0a": true,
		"": false, "-a": false, "a-": false, "Echo": false, "a_b": false, "a.b": false,
		string(make([]byte, 64)): false,
	} {
		if got := DNSLabel(s); got != want {
			t.Errorf("DNSLabel(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestSafe(t *testing.T) {
	for s, want := range map[string]bool{
		"sidecar-peak_ewma-http1-r2": true, "a": true, "0": true,
		"": false, ".": false, "..": false, "a/b": false, `a\b`: false, "-a": false, "_a": false, "A": false,
	} {
		if got := Safe(s); got != want {
			t.Errorf("Safe(%q) = %v, want %v", s, got, want)
		}
	}
}

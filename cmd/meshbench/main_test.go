package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVerbs(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "meshbench ") {
		t.Errorf("version: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "version") {
		t.Errorf("help: %d %q", code, out.String())
	}
	errb.Reset()
	if code := run(t.Context(), []string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown verb "frobnicate"`) {
		t.Errorf("unknown verb: %d %q", code, errb.String())
	}
	if code := run(t.Context(), nil, &out, &errb); code != 2 {
		t.Errorf("no verb: exit %d, want 2", code)
	}
}

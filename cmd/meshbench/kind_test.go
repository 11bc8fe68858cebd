package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runKindArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), append([]string{"kind"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestKindUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no sub-verb", nil, "missing sub-verb"},
		{"unknown sub-verb", []string{"create"}, `unknown sub-verb "create"`},
		{"up unknown flag", []string{"up", "--workers", "3"}, "flag provided but not defined: -workers"},
		{"up zero nodes", []string{"up", "--nodes", "0"}, "--nodes 0: at least 1"},
		{"up bad nodes", []string{"up", "--nodes", "two"}, "invalid value"},
		{"up bad name", []string{"up", "--name", "Mesh_Bench"}, "--name"},
		{"up zero wait", []string{"up", "--wait", "0s"}, "--wait 0s"},
		{"up argument", []string{"up", "extra"}, `unexpected argument "extra"`},
		{"down empty name", []string{"down", "--name", ""}, "--name"},
		{"down argument", []string{"down", "meshbench"}, `unexpected argument "meshbench"`},
		{"load unknown flag", []string{"load", "--image", "x"}, "flag provided but not defined: -image"},
		{"load bad name", []string{"load", "--name", "-x"}, "--name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runKindArgs(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
			if !strings.Contains(stderr, "meshbench kind") {
				t.Errorf("stderr does not name meshbench kind:\n%s", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout on a usage error: %q", stdout)
			}
		})
	}
}

func TestKindHelp(t *testing.T) {
	code, stdout, _ := runKindArgs(t, "help")
	if code != 0 {
		t.Errorf("kind help: exit %d", code)
	}
	for _, sub := range []string{"up", "down", "load"} {
		if !strings.Contains(stdout, "\n  "+sub+" ") {
			t.Errorf("kind help does not describe %s:\n%s", sub, stdout)
		}
	}
	code, _, stderr := runKindArgs(t, "up", "--help")
	if code != 0 || !strings.Contains(stderr, "-node-image") || !strings.Contains(stderr, "-kubeconfig") {
		t.Errorf("kind up --help: exit %d\n%s", code, stderr)
	}
	var out bytes.Buffer
	run(t.Context(), []string{"help"}, &out, &out)
	if !strings.Contains(out.String(), "kind ") {
		t.Errorf("meshbench help does not list kind:\n%s", out.String())
	}
}

// kind load checks the binaries before it touches docker or a cluster.
func TestKindLoadNeedsStaticBinaries(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runKindArgs(t, "load", "--bin", dir)
	if code != 1 || !strings.Contains(stderr, filepath.Join(dir, "meshbench")) || !strings.Contains(stderr, "make build") {
		t.Errorf("load from an empty --bin: exit %d\n%s", code, stderr)
	}
	for _, f := range []string{"meshbench", "meshproxy"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr = runKindArgs(t, "load", "--bin", dir)
	if code != 1 || !strings.Contains(stderr, "not an ELF executable") {
		t.Errorf("load of shell scripts: exit %d\n%s", code, stderr)
	}
}

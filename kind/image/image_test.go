package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/kind/kindtest"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestCheckStatic(t *testing.T) {
	dir := t.TempDir()
	if err := CheckStatic(kindtest.StaticBinary(t, dir, "static")); err != nil {
		t.Errorf("static Go binary refused: %v", err)
	}

	dynamic := ""
	for _, f := range []string{"/bin/ls", "/usr/bin/ls", "/bin/sh"} {
		if _, err := os.Stat(f); err == nil {
			dynamic = f
			break
		}
	}
	if dynamic == "" {
		t.Fatal("no dynamically linked system binary found (/bin/ls, /bin/sh)")
	}
	err := CheckStatic(dynamic)
	if err == nil || !strings.Contains(err.Error(), "dynamically linked: build with CGO_ENABLED=0") {
		t.Errorf("CheckStatic(%s) = %v, want a dynamically-linked error", dynamic, err)
	}
	if err != nil && !strings.Contains(err.Error(), dynamic) {
		t.Errorf("error %q does not name %s", err, dynamic)
	}

	text := writeFile(t, filepath.Join(dir, "script"), "#!/bin/sh\necho hi\n")
	if err := CheckStatic(text); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("CheckStatic(script) = %v, want a not-ELF error", err)
	}
	if err := CheckStatic(filepath.Join(dir, "missing")); err == nil {
		t.Error("CheckStatic(missing file) = nil")
	}
}

func TestTagDependsOnNamesAndContents(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, filepath.Join(dir, "a"), "binary one")
	aCopy := writeFile(t, filepath.Join(dir, "a-copy"), "binary one")
	b := writeFile(t, filepath.Join(dir, "b"), "binary two")
	tag := func(files map[string]string) string {
		t.Helper()
		s, err := Tag(files)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 12 || strings.Trim(s, "0123456789abcdef") != "" {
			t.Fatalf("tag %q is not 12 hex digits", s)
		}
		return s
	}
	base := tag(map[string]string{"/x": a, "/y": b})
	if got := tag(map[string]string{"/x": aCopy, "/y": b}); got != base {
		t.Errorf("same contents at another host path: tag %s, want %s", got, base)
	}
	if got := tag(map[string]string{"/x": b, "/y": a}); got == base {
		t.Error("swapping contents between in-image paths kept the tag")
	}
	if got := tag(map[string]string{"/x": a, "/z": b}); got == base {
		t.Error("renaming an in-image path kept the tag")
	}
	if got := tag(map[string]string{"/x": a}); got == base {
		t.Error("dropping a file kept the tag")
	}
	writeFile(t, b, "binary two, rebuilt")
	if got := tag(map[string]string{"/x": a, "/y": b}); got == base {
		t.Error("changing a file's contents kept the tag")
	}
	// Moving bytes across the boundary between two files must change the tag.
	writeFile(t, a, "ab")
	writeFile(t, b, "c")
	split1 := tag(map[string]string{"/x": a, "/y": b})
	writeFile(t, a, "a")
	writeFile(t, b, "bc")
	if tag(map[string]string{"/x": a, "/y": b}) == split1 {
		t.Error("moving a byte from one file to the next kept the tag")
	}
	if _, err := Tag(map[string]string{"/x": filepath.Join(dir, "missing")}); err == nil {
		t.Error("Tag of a missing file = nil error")
	}
}

func TestBinaries(t *testing.T) {
	got := Binaries("bin")
	want := map[string]string{"/meshproxy": filepath.Join("bin", "meshproxy"), "/meshbench": filepath.Join("bin", "meshbench")}
	if len(got) != len(want) || got["/meshproxy"] != want["/meshproxy"] || got["/meshbench"] != want["/meshbench"] {
		t.Errorf("Binaries(bin) = %v, want %v", got, want)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	static := kindtest.StaticBinary(t, dir, "static")
	ctx := context.Background()
	for _, tc := range []struct {
		name, repo string
		files      map[string]string
		want       string
	}{
		{"no files", Repo, nil, "no files"},
		{"relative path", Repo, map[string]string{"hello": static}, "in-image path"},
		{"root path", Repo, map[string]string{"/": static}, "in-image path"},
		{"tagged repo", Repo + ":v1", map[string]string{"/hello": static}, "repository"},
		{"dynamic", Repo, map[string]string{"/ls": "/bin/ls"}, "dynamically linked"},
		{"missing", Repo, map[string]string{"/x": filepath.Join(dir, "missing")}, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, err := Build(ctx, tc.repo, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build = %q, %v; want an error containing %q", ref, err, tc.want)
			}
		})
	}
}

// needDocker skips the test when docker does not answer, or fails it when
// MESHBENCH_REQUIRE_KIND=1.
func needDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err == nil {
		return
	}
	reason := "docker does not answer: " + strings.TrimSpace(string(out))
	if os.Getenv("MESHBENCH_REQUIRE_KIND") == "1" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

func TestBuildImage(t *testing.T) {
	needDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	// A unique message makes a binary, and so a tag, no earlier run built.
	msg := "image test " + time.Now().Format(time.RFC3339Nano)
	bin := kindtest.StaticBinary(t, dir, msg)
	repo := "meshbench/image-test"
	files := map[string]string{"/bin/hello": bin}
	ref, err := Build(ctx, repo, files)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "--force", ref).Run() })
	tag, _ := Tag(files)
	if ref != repo+":"+tag {
		t.Errorf("Build = %s, want %s:%s", ref, repo, tag)
	}
	// Built again: the same reference, without a new image.
	id := func() string {
		out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}} {{.Created}}", ref).Output()
		if err != nil {
			t.Fatalf("docker image inspect %s: %v", ref, err)
		}
		return string(out)
	}
	before := id()
	again, err := Build(ctx, repo, files)
	if err != nil || again != ref {
		t.Fatalf("second Build = %q, %v; want %q", again, err, ref)
	}
	if after := id(); after != before {
		t.Errorf("second Build rebuilt the image: %s then %s", before, after)
	}
	// The binary is in the image at its in-image path, executable and intact.
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--network", "none", ref, "/bin/hello").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s /bin/hello: %v\n%s", ref, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != msg {
		t.Errorf("/bin/hello printed %q, want %q", got, msg)
	}
	want, _ := os.ReadFile(bin)
	var got bytes.Buffer
	cid, err := exec.CommandContext(ctx, "docker", "create", ref, "/bin/hello").Output()
	if err != nil {
		t.Fatalf("docker create: %v", err)
	}
	defer exec.Command("docker", "rm", strings.TrimSpace(string(cid))).Run()
	cp := exec.CommandContext(ctx, "docker", "export", strings.TrimSpace(string(cid)))
	cp.Stdout = &got
	if err := cp.Run(); err != nil {
		t.Fatalf("docker export: %v", err)
	}
	if !bytes.Contains(got.Bytes(), want) {
		t.Error("the exported image does not hold the binary's bytes")
	}
}

package discovery_test

import (
	"github.com/meshbench/meshbench/proxy/discovery"
	"github.com/meshbench/meshbench/proxy/discovery/discoverytest"

	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbench/meshbench/internal/yamlstrict"
)

// fileHarness runs a discovery.File source on a temporary file with a 10ms poll
// interval and counts its polls.
type fileHarness struct {
	t     *testing.T
	dir   string
	path  string
	log   *discoverytest.LogBuffer
	polls atomic.Int64
	rec   *discoverytest.Recorder
}

func newFileHarness(t *testing.T) *fileHarness {
	dir := t.TempDir()
	return &fileHarness{t: t, dir: dir, path: filepath.Join(dir, "endpoints.yaml"), log: &discoverytest.LogBuffer{}, rec: discoverytest.NewRecorder(t)}
}

func (h *fileHarness) source() discovery.Source {
	return discovery.File(discovery.FileConfig{
		Path:         h.path,
		PollInterval: 10 * time.Millisecond,
		Log:          slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Polled:       func() { h.polls.Add(1) },
	})
}

// start writes doc to the file, starts the source and checks its first set.
func (h *fileHarness) start(doc string, want ...discovery.Endpoint) {
	h.t.Helper()
	h.write(h.path, doc)
	discoverytest.Start(h.t, h.source(), h.rec)
	h.rec.Next(want...)
}

func (h *fileHarness) write(path, doc string) {
	h.t.Helper()
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// replace writes doc to the watched file atomically, by renaming a new file
// over it, so that the source cannot see it half-written.
func (h *fileHarness) replace(doc string) {
	h.t.Helper()
	tmp := filepath.Join(h.dir, ".endpoints.yaml.tmp")
	h.write(tmp, doc)
	if err := os.Rename(tmp, h.path); err != nil {
		h.t.Fatal(err)
	}
}

// settle waits until the source has completed two more polls, so that it
// has seen everything written before the call.
func (h *fileHarness) settle() {
	h.t.Helper()
	n := h.polls.Load() + 2
	discoverytest.Eventually(h.t, "two polls", func() bool { return h.polls.Load() >= n })
}

func TestFileStartErrors(t *testing.T) {
	dir := t.TempDir()
	noUpdate := func([]discovery.Endpoint) { t.Error("update called") }

	missing := filepath.Join(dir, "missing.yaml")
	err := discovery.File(discovery.FileConfig{Path: missing}).Run(context.Background(), noUpdate)
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "reading endpoints file "+missing+": ") {
		t.Errorf("missing file: %v", err)
	}

	invalid := filepath.Join(dir, "invalid.yaml")
	if err := os.WriteFile(invalid, []byte("endpoints:\n  - 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = discovery.File(discovery.FileConfig{Path: invalid}).Run(context.Background(), noUpdate)
	var es yamlstrict.Errors
	if !errors.As(err, &es) || !strings.HasPrefix(err.Error(), invalid+":2: endpoints[0]: ") {
		t.Errorf("invalid file: %v", err)
	}

	err = discovery.File(discovery.FileConfig{Path: invalid, PollInterval: -time.Second}).Run(context.Background(), noUpdate)
	if err == nil || !strings.Contains(err.Error(), "negative poll interval") {
		t.Errorf("negative interval: %v", err)
	}
}

func TestFileInitialSet(t *testing.T) {
	h := newFileHarness(t)
	h.start("endpoints: [127.0.0.1:8082, 127.0.0.1:8081]\nweights: {127.0.0.1:8082: 2}\n",
		discovery.Endpoint{"127.0.0.1:8081", 1}, discovery.Endpoint{"127.0.0.1:8082", 2})
	h.settle()
	h.rec.None()
}

func TestFileEmptyList(t *testing.T) {
	h := newFileHarness(t)
	h.start("endpoints: []\n")
	h.write(h.path, "endpoints: [127.0.0.1:8081]\n")
	h.rec.Next(discoverytest.Eps("127.0.0.1:8081")...)
	h.write(h.path, "endpoints: []\n")
	h.rec.Next()
}

func TestFileWriteInPlace(t *testing.T) {
	h := newFileHarness(t)
	h.start("endpoints: [127.0.0.1:8081]\n", discoverytest.Eps("127.0.0.1:8081")...)
	// Same size as before: only the content tells the change apart.
	h.write(h.path, "endpoints: [127.0.0.1:8082]\n")
	h.rec.Next(discoverytest.Eps("127.0.0.1:8082")...)
	h.write(h.path, "endpoints: [127.0.0.1:8082, 127.0.0.1:8083]\nweights: {127.0.0.1:8083: 4}\n")
	h.rec.Next(discovery.Endpoint{"127.0.0.1:8082", 1}, discovery.Endpoint{"127.0.0.1:8083", 4})
	if !strings.Contains(h.log.String(), "endpoints file changed") {
		t.Errorf("change not logged:\n%s", h.log)
	}
}

func TestFileSameContentNoUpdate(t *testing.T) {
	h := newFileHarness(t)
	doc := "endpoints: [127.0.0.1:8081, 127.0.0.1:8082]\n"
	h.start(doc, discoverytest.Eps("127.0.0.1:8081", "127.0.0.1:8082")...)
	h.write(h.path, doc) // identical bytes, new mtime
	h.settle()
	h.rec.None()
	// Different bytes, same set.
	h.write(h.path, "# reordered\nendpoints:\n  - 127.0.0.1:8082\n  - 127.0.0.1:8081\nweights: {127.0.0.1:8081: 1}\n")
	h.settle()
	h.rec.None()
	h.write(h.path, "endpoints: [127.0.0.1:8081]\n")
	h.rec.Next(discoverytest.Eps("127.0.0.1:8081")...)
}

func TestFileReplaceByRename(t *testing.T) {
	h := newFileHarness(t)
	h.start("endpoints: [127.0.0.1:8081]\n", discoverytest.Eps("127.0.0.1:8081")...)
	h.replace("endpoints: [127.0.0.1:8082]\n")
	h.rec.Next(discoverytest.Eps("127.0.0.1:8082")...)
	h.replace("endpoints: [127.0.0.1:8083]\n")
	h.rec.Next(discoverytest.Eps("127.0.0.1:8083")...)
}

// TestFileSymlinkSwap replays how the kubelet updates a mounted ConfigMap:
// the file is a link through ..data, a link to a timestamped directory that
// is replaced by renaming a new link over it.
func TestFileSymlinkSwap(t *testing.T) {
	h := newFileHarness(t)
	version := func(name, doc string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(h.dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		h.write(filepath.Join(h.dir, name, "endpoints.yaml"), doc)
		if err := os.Symlink(name, filepath.Join(h.dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(h.dir, "..data_tmp"), filepath.Join(h.dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_01_01_00_00_00.1", "endpoints: [127.0.0.1:8081]\n")
	if err := os.Symlink(filepath.Join("..data", "endpoints.yaml"), h.path); err != nil {
		t.Fatal(err)
	}
	discoverytest.Start(t, h.source(), h.rec)
	h.rec.Next(discoverytest.Eps("127.0.0.1:8081")...)

	version("..2026_01_01_00_00_00.2", "endpoints: [127.0.0.1:8082]\n")
	h.rec.Next(discoverytest.Eps("127.0.0.1:8082")...)
	// The kubelet then removes the old version.
	if err := os.RemoveAll(filepath.Join(h.dir, "..2026_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	version("..2026_01_01_00_00_00.3", "endpoints: [127.0.0.1:8082, \"[::1]:8082\"]\n")
	h.rec.Next(discoverytest.Eps("127.0.0.1:8082", "[::1]:8082")...)
}

func TestFileInvalidKeepsLastSet(t *testing.T) {
	h := newFileHarness(t)
	h.start("endpoints: [127.0.0.1:8081]\n", discoverytest.Eps("127.0.0.1:8081")...)
	h.replace("endpoints: [127.0.0.1:8081, 127.0.0.1:0]\n")
	discoverytest.Eventually(t, "a warning", func() bool { return h.log.Count("invalid endpoints file") > 0 })
	h.settle()
	h.rec.None()
	logs := h.log.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, `endpoints[1]: \"127.0.0.1:0\": port \"0\" is not in 1..65535`) {
		t.Errorf("warning without the error:\n%s", logs)
	}
	if n := h.log.Count("invalid endpoints file"); n != 1 {
		t.Errorf("the same invalid content was reported %d times, want once:\n%s", n, logs)
	}
	h.replace("") // an empty file is not an empty set
	discoverytest.Eventually(t, "a second warning", func() bool { return h.log.Count("invalid endpoints file") == 2 })
	h.replace("endpoints: [127.0.0.1:8082]\n")
	h.rec.Next(discoverytest.Eps("127.0.0.1:8082")...)
}

func TestFileDeletedKeepsLastSet(t *testing.T) {
	h := newFileHarness(t)
	doc := "endpoints: [127.0.0.1:8081]\n"
	h.start(doc, discoverytest.Eps("127.0.0.1:8081")...)
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "a warning", func() bool { return h.log.Count("cannot read endpoints file") > 0 })
	h.settle()
	h.rec.None()
	if n := h.log.Count("cannot read endpoints file"); n != 1 {
		t.Errorf("the missing file was reported %d times, want once:\n%s", n, h.log)
	}
	// Recreated with the same content: nothing changed.
	h.write(h.path, doc)
	h.settle()
	h.rec.None()
	// Deleted again, then recreated with new content.
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "another warning", func() bool { return h.log.Count("cannot read endpoints file") == 2 })
	h.write(h.path, "endpoints: [127.0.0.1:8082]\n")
	h.rec.Next(discoverytest.Eps("127.0.0.1:8082")...)
}

func TestFileDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "e.yaml")
	if err := os.WriteFile(path, []byte("endpoints: [a:1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan []discovery.Endpoint, 1)
	done := make(chan error, 1)
	go func() {
		done <- discovery.File(discovery.FileConfig{Path: path}).Run(ctx, func(e []discovery.Endpoint) { got <- e })
	}()
	select {
	case e := <-got:
		if len(e) != 1 || e[0] != (discovery.Endpoint{"a:1", 1}) {
			t.Errorf("got %v", e)
		}
	case <-time.After(discoverytest.WaitTimeout):
		t.Fatal("no first set")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

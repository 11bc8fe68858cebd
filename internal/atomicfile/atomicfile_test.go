package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/meshbench/meshbench/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "run.json")
	for _, data := range []string{"first", "second, longer"} {
		if err := atomicfile.Write(p, []byte(data)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != data {
			t.Fatalf("read %q, %v; want %q", b, err, data)
		}
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := atomicfile.Write(filepath.Join(dir, "no", "such", "dir"), nil); err == nil {
		t.Error("a missing directory: no error")
	}
}

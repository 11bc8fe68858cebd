package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Repo is the repository of meshbench's own image.
const Repo = "meshbench/meshbench"

// tagLength is how many hex digits of the content hash make the tag.
const tagLength = 12

// Binaries returns the files of meshbench's image: dir/meshproxy at
// /meshproxy and dir/meshbench at /meshbench, the two binaries `make build`
// writes into bin/.
func Binaries(dir string) map[string]string {
	return map[string]string{
		"/meshproxy": filepath.Join(dir, "meshproxy"),
		"/meshbench": filepath.Join(dir, "meshbench"),
	}
}

// Build builds a FROM scratch image holding files (in-image path → host
// path), each a static executable, and returns its reference
// repo:TAG, TAG being Tag(files). When docker already has that reference
// it is not built again.
func Build(ctx context.Context, repo string, files map[string]string) (string, error) {
	if err := validate(repo, files); err != nil {
		return "", err
	}
	for _, src := range files {
		if err := CheckStatic(src); err != nil {
			return "", fmt.Errorf("building image %s: %w", repo, err)
		}
	}
	return buildValid(ctx, repo, files)
}

// BuildFiles is Build without the check that every file is a static
// executable: for an image that carries a dynamically linked binary with
// its loader and libraries (PeerFiles).
func BuildFiles(ctx context.Context, repo string, files map[string]string) (string, error) {
	if err := validate(repo, files); err != nil {
		return "", err
	}
	return buildValid(ctx, repo, files)
}

// validate checks an image's repository and files.
func validate(repo string, files map[string]string) error {
	if repo == "" || strings.Contains(repo, ":") || strings.ToLower(repo) != repo {
		return fmt.Errorf("building image: repository %q must be non-empty, lower case and without a tag", repo)
	}
	if err := checkFiles(files); err != nil {
		return fmt.Errorf("building image %s: %w", repo, err)
	}
	return nil
}

// buildValid builds the image of validated files unless docker has it.
func buildValid(ctx context.Context, repo string, files map[string]string) (string, error) {
	tag, err := Tag(files)
	if err != nil {
		return "", fmt.Errorf("building image %s: %w", repo, err)
	}
	ref := repo + ":" + tag
	if exists(ctx, ref) {
		return ref, nil
	}
	if err := build(ctx, ref, files); err != nil {
		return "", fmt.Errorf("building image %s: %w", ref, err)
	}
	return ref, nil
}

// checkFiles returns an error unless files is non-empty and every in-image
// path is absolute, clean and not the root.
func checkFiles(files map[string]string) error {
	if len(files) == 0 {
		return errors.New("no files")
	}
	for dst := range files {
		if !path.IsAbs(dst) || path.Clean(dst) != dst || dst == "/" {
			return fmt.Errorf("in-image path %q: must be an absolute, clean file path", dst)
		}
	}
	return nil
}

// Tag returns the tag of an image of files: the first 12 hex digits of a
// SHA-256 over the in-image paths and the files' contents, in path order.
// Host paths do not count, so the same files give the same tag wherever
// they are.
func Tag(files map[string]string) (string, error) {
	h := sha256.New()
	for _, dst := range slices.Sorted(maps.Keys(files)) {
		if err := hashFile(h, dst, files[dst]); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:tagLength], nil
}

// hashFile writes dst, the size of src and src's contents into h.
func hashFile(h io.Writer, dst, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("hashing %s: %w", src, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("hashing %s: %w", src, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("hashing %s: not a regular file", src)
	}
	io.WriteString(h, dst)
	h.Write([]byte{0})
	binary.Write(h, binary.BigEndian, st.Size())
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("hashing %s: %w", src, err)
	}
	if n != st.Size() {
		return fmt.Errorf("hashing %s: it changed while being read", src)
	}
	return nil
}

// CheckStatic returns nil when file is a statically linked ELF executable,
// the only kind that runs in a FROM scratch image: an ELF executable with
// no PT_INTERP program header (no dynamic loader).
func CheckStatic(file string) error {
	r, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("checking %s: %w", file, err)
	}
	defer r.Close()
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable: %w", file, err)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is not an executable (ELF type %v)", file, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: build with CGO_ENABLED=0", file)
		}
	}
	return nil
}

// exists reports whether docker has the image ref.
func exists(ctx context.Context, ref string) bool {
	return exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", ref).Run() == nil
}

// build writes a build context with files under files/ and a Dockerfile
// that copies them into a scratch image, and runs docker build on it.
func build(ctx context.Context, ref string, files map[string]string) error {
	dir, err := os.MkdirTemp("", "meshbench-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for dst, src := range files {
		if err := copyFile(filepath.Join(dir, "files", filepath.FromSlash(dst)), src); err != nil {
			return err
		}
	}
	dockerfile := "FROM scratch\nCOPY files/ /\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", "build", "--tag", ref, "--file", filepath.Join(dir, "Dockerfile"), dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker build: %w: %s", err, lastLines(out.String(), 20))
	}
	return nil
}

// copyFile copies src to dst as an executable (mode 0755), making dst's
// directories.
func copyFile(dst, src string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(0o755)
	}
	if err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PeerFiles returns the files of a FROM scratch image that runs the
// dynamically linked binary bin (a peer proxy from a Debian package): bin
// and every shared library ldd lists for it (the dynamic loader included),
// each at its host path, and an /etc/passwd and /etc/group naming root and
// nobody (nginx looks its worker user up). The two files are written into
// dir, which must outlive the build.
func PeerFiles(ctx context.Context, bin, dir string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("listing the libraries of %s (ldd): %w", bin, err)
	}
	files := map[string]string{bin: bin}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2] // libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0] // /lib64/ld-linux-x86-64.so.2 (0x...)
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("%s: library %s not found (ldd)", bin, f[0])
		}
		if lib != "" {
			files[lib] = lib
		}
	}
	for name, data := range map[string]string{
		"passwd": "root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
		"group":  "root:x:0:\nnogroup:x:65534:\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return nil, fmt.Errorf("writing the image's /etc/%s: %w", name, err)
		}
		files["/etc/"+name] = p
	}
	return files, nil
}

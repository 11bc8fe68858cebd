package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/meshbench/meshbench/proxy/config"
)

// writeProxyConfig writes a proxy's configuration to path and has meshproxy
// check it in the working directory wd (where the proxy will run: relative
// certificate paths resolve there), so that a configuration the proxy would
// refuse fails Deploy with the proxy's own message.
func writeProxyConfig(ctx context.Context, meshproxy, wd, path string, c *config.Config) error {
	b, err := c.YAML()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing proxy config: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing proxy config: %w", err)
	}
	cmd := exec.CommandContext(ctx, meshproxy, "--config", path, "--validate")
	cmd.Dir = wd
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("validating proxy config %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

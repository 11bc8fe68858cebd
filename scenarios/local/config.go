package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/meshbench/meshbench/proxy/config"
)

// configYAML renders a proxy configuration as YAML. It goes through the
// configuration's JSON form, whose omitempty tags leave unset optional
// sections out, so the file reads like one written by hand.
func configYAML(c *config.Config) ([]byte, error) {
	j, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding proxy config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(j, &doc); err != nil {
		return nil, fmt.Errorf("encoding proxy config: %w", err)
	}
	blockStyle(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encoding proxy config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding proxy config: %w", err)
	}
	return buf.Bytes(), nil
}

// blockStyle turns JSON's flow style and quoting into YAML's block style;
// the encoder quotes the scalars that need it.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// writeProxyConfig writes a proxy's configuration to path and has meshproxy
// check it in the working directory wd (where the proxy will run: relative
// certificate paths resolve there), so that a configuration the proxy would
// refuse fails Deploy with the proxy's own message.
func writeProxyConfig(ctx context.Context, meshproxy, wd, path string, c *config.Config) error {
	b, err := configYAML(c)
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

package config_test

import (
	"bytes"
	"testing"

	"github.com/meshbench/meshbench/proxy/config"
)

// FuzzConfigParse feeds arbitrary documents to the parser. It must never
// panic, and a configuration it accepts must survive a round trip through
// its JSON form (what /config serves, and valid YAML): parsed again, it is
// accepted and encodes to the same JSON.
func FuzzConfigParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(originalDst))
	f.Add([]byte(via))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		js, err := c.JSON()
		if err != nil {
			t.Fatalf("encoding an accepted config: %v", err)
		}
		c2, err := config.Parse("fuzz.json", js)
		if err != nil {
			t.Fatalf("the JSON form of an accepted config is refused: %v\n%s", err, js)
		}
		js2, err := c2.JSON()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(js, js2) {
			t.Fatalf("round trip changed the config:\n%s\n---\n%s", js, js2)
		}
	})
}

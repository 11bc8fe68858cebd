package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// YAML renders the configuration as YAML a proxy reads back to
// the same configuration: the fields in the order of the configuration
// types, without the fields left at their zero value (which the proxy
// fills with its defaults). A section given by a pointer (retry,
// outlier_detection, via, ...) is kept even when empty, since its
// presence is what turns it on.
func (c *Config) YAML() ([]byte, error) {
	js, err := c.JSON()
	if err != nil {
		return nil, fmt.Errorf("encoding proxy config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(js, &doc); err != nil {
		return nil, fmt.Errorf("converting proxy config to YAML: %w", err)
	}
	if len(doc.Content) == 1 {
		prune(doc.Content[0], reflect.TypeFor[Config]())
	}
	plain(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("converting proxy config to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("converting proxy config to YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// plain drops the flow style and quoting that JSON input gives every node,
// so that the encoder writes block YAML (it still quotes strings that would
// otherwise read as another type); lists of scalars stay on one line.
func plain(n *yaml.Node) {
	n.Style = 0
	flow := n.Kind == yaml.SequenceNode
	for _, c := range n.Content {
		plain(c)
		flow = flow && c.Kind == yaml.ScalarNode
	}
	if flow {
		n.Style = yaml.FlowStyle
	}
}

// prune removes from the JSON-derived node n of Go type t the struct
// fields whose value is zero, and reports whether n itself is zero. Lists
// and map entries are kept as they are (an empty list of endpoints differs
// from none).
func prune(n *yaml.Node, t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Struct:
			var kept []*yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				f, ok := jsonField(t, n.Content[i].Value)
				if !ok {
					kept = append(kept, n.Content[i], n.Content[i+1])
					continue
				}
				if prune(n.Content[i+1], f.Type) && f.Type.Kind() != reflect.Pointer {
					continue
				}
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
			n.Content = kept
		case reflect.Map:
			for i := 1; i < len(n.Content); i += 2 {
				prune(n.Content[i], t.Elem())
			}
		}
		return len(n.Content) == 0
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice {
			for _, c := range n.Content {
				prune(c, t.Elem())
			}
		}
		return false
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return true
		}
		switch t.Kind() {
		case reflect.String:
			return n.Value == ""
		case reflect.Bool:
			return n.Value == "false"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			if n.Value == "0s" {
				return true // a zero duration
			}
			f, err := strconv.ParseFloat(n.Value, 64)
			return err == nil && f == 0
		}
	}
	return false
}

// jsonField finds the field of struct type t whose JSON name is name.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name || tag == "" && f.Name == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

package yamlstrict

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Error is one problem found in a document.
type Error struct {
	File string // file name as given to the decoder
	Line int    // 1-based line, 0 when unknown
	Path string // field path such as clusters[1].endpoints[0]; empty for the document
	Msg  string
}

// Error formats the problem as FILE:LINE: PATH: MSG.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of problems; it is what Decode returns when the document
// is not acceptable.
type Errors []*Error

// Error joins the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Positions maps field paths to the line they were written on.
type Positions map[string]int

// Errorf builds an Error for path in file, with the line taken from p.
func (p Positions) Errorf(file, path, format string, args ...any) *Error {
	return &Error{File: file, Line: p.line(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// line returns the line of path, or of its closest recorded parent.
func (p Positions) line(path string) int {
	for {
		if l, ok := p[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return p[""]
		}
		path = path[:i]
	}
}

// Decode parses data (named file in messages) into out, which must be a
// pointer to a struct. Unknown fields, type mismatches and bad scalar values
// are all reported, not only the first one. An empty document leaves out
// unchanged.
func Decode(file string, data []byte, out any) (Positions, error) {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("yamlstrict: Decode needs a non-nil pointer, got %T", out)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, Errors{syntaxError(file, err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, Errors{syntaxError(file, err)}
	default:
		return nil, Errors{{File: file, Line: next.Line, Msg: "a second YAML document: the file must hold one document (remove the \"---\" and what follows, or merge the documents)"}}
	}
	d := &decoder{file: file, pos: Positions{}}
	if len(doc.Content) == 0 {
		return d.pos, nil
	}
	root := doc.Content[0]
	d.pos[""] = root.Line
	d.value(root, rv.Elem(), "")
	if len(d.errs) > 0 {
		return d.pos, d.errs
	}
	return d.pos, nil
}

type decoder struct {
	file string
	pos  Positions
	errs Errors
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	unmarshalerTy = reflect.TypeFor[encoding.TextUnmarshaler]()
	// nodeUnmarshalerTy is a type that reads its own YAML node (a value
	// that may be a scalar, a list or a mapping); its error is reported at
	// the node.
	nodeUnmarshalerTy = reflect.TypeFor[yaml.Unmarshaler]()
)

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.pos[path] = n.Line
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if reflect.PointerTo(v.Type()).Implements(nodeUnmarshalerTy) && v.Kind() != reflect.Pointer {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerTy) && v.Kind() != reflect.Pointer {
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a scalar, found %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.fail(n, path, "%q: %v", n.Value, err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.value(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, found %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.value(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping, found %s", kindName(n))
			return
		}
		if v.Type().Key().Kind() != reflect.String {
			d.fail(n, path, "unsupported map key type %s", v.Type().Key())
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := reflect.New(v.Type().Key()).Elem()
			key.SetString(k.Value)
			if m.MapIndex(key).IsValid() {
				d.fail(k, path, "duplicate key %q", k.Value)
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			d.value(val, elem, joinPath(path, k.Value))
			m.SetMapIndex(key, elem)
		}
		v.Set(m)
	default:
		d.scalar(n, v, path)
	}
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, found %s", kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := k.Value
		fp := joinPath(path, name)
		idx, ok := fields[name]
		if !ok {
			d.fail(k, fp, "unknown field (known fields: %s)", strings.Join(sortedKeys(fields), ", "))
			continue
		}
		if seen[name] {
			d.fail(k, fp, "field given twice")
			continue
		}
		seen[name] = true
		d.value(val, v.FieldByIndex(idx), fp)
	}
}

func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected a %s, found %s", typeName(v.Type()), kindName(n))
		return
	}
	s := n.Value
	if v.Type() == durationType {
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(n, path, "%q: not a duration (examples: 250ms, 2s, 1m30s)", s)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.fail(n, path, "%q: not a boolean (true or false)", s)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			d.fail(n, path, "%q: not an integer%s", s, rangeHint(err))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			d.fail(n, path, "%q: not a non-negative integer%s", s, rangeHint(err))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			d.fail(n, path, "%q: not a number", s)
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, "unsupported field type %s", v.Type())
	}
}

func rangeHint(err error) string {
	if errors.Is(err, strconv.ErrRange) {
		return " in range"
	}
	return ""
}

// fieldsOf maps YAML names to struct field indexes. The name is the first
// part of the `yaml` tag, or the lower-cased field name; "-" skips a field.
func fieldsOf(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := strings.ToLower(f.Name)
		if tag, ok := f.Tag.Lookup("yaml"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		out[name] = f.Index
	}
	return out
}

func sortedKeys(m map[string][]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Float32, reflect.Float64:
		return "number"
	default:
		return "integer"
	}
}

// syntaxError turns go-yaml's "yaml: line N: msg" into an Error with a line.
func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file, Msg: msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, m, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				e.Line, e.Msg = n, "YAML syntax: "+m
			}
		}
	}
	return e
}

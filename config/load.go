package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the configuration: defaults, then the YAML file at path (none
// when path is ""), then SOMA_* environment variables, then the derived
// defaults, then Validate. Unknown keys, values of the wrong type and bad
// environment values are errors naming the key or variable.
func Load(path string) (*Config, error) {
	return load(path, os.LookupEnv)
}

func load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	c := base()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := applyYAML(c, path, data); err != nil {
			return nil, problems("config", err)
		}
	}
	if err := applyEnv(c, lookupEnv); err != nil {
		return nil, problems("config", err)
	}
	c.deriveDefaults()
	if err := c.Validate(); err != nil {
		return nil, problems("invalid config", err)
	}
	return c, nil
}

// EnvVar is the environment variable that overrides a key ("database.backend"
// → "SOMA_DATABASE_BACKEND").
func EnvVar(key string) string {
	return "SOMA_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every leaf key of the file, in file order ("server_name",
// "client_api.listen", ...).
func Keys() []string {
	var keys []string
	for _, f := range leafFields() {
		keys = append(keys, f.key)
	}
	return keys
}

// field is one leaf key of Config.
type field struct {
	key   string // dotted yaml path
	index []int  // reflect field index path from Config
}

func leafFields() []field {
	var out []field
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			key := prefix + yamlName(sf)
			idx := append(slices.Clone(index), i)
			if isSection(sf.Type) {
				walk(sf.Type, key+".", idx)
				continue
			}
			out = append(out, field{key: key, index: idx})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}

func yamlName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	if name == "" {
		panic("config: field " + sf.Name + " lacks a yaml tag")
	}
	return name
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// isSection reports whether a field is a nested mapping rather than a value.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshaler)
}

// setValue parses s into a leaf; YAML scalars and env values share it so
// both accept the same spellings.
func setValue(v reflect.Value, s string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q (want true or false)", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		// A list in an env value is comma-separated.
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		return setList(v, items)
	default:
		panic("config: unsupported field kind " + v.Kind().String())
	}
	return nil
}

// applyEnv applies SOMA_* overrides. An empty variable counts as unset, so
// that `SOMA_X=${UNSET}` in a compose file keeps the file's value.
func applyEnv(c *Config, lookupEnv func(string) (string, bool)) error {
	var errs []error
	root := reflect.ValueOf(c).Elem()
	for _, f := range leafFields() {
		name := EnvVar(f.key)
		s, ok := lookupEnv(name)
		if !ok || s == "" {
			continue
		}
		if err := setValue(root.FieldByIndex(f.index), s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", name, err))
		}
	}
	return errors.Join(errs...)
}

// applyYAML walks the document against Config so that every problem names
// its key and line: unknown keys (what yaml.v3's KnownFields reports, with the
// full path), duplicates, and values that do not parse. A key with no value
// ("key:" or "key: null") keeps its default.
func applyYAML(c *Config, path string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: defaults
		}
		return fmt.Errorf("%s: %v", path, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: want a single YAML document", path)
	}
	d := yamlDecoder{path: path}
	d.mapping(doc.Content[0], reflect.ValueOf(c).Elem(), "")
	return errors.Join(d.errs...)
}

type yamlDecoder struct {
	path string
	errs []error
}

func (d *yamlDecoder) fail(n *yaml.Node, key, format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s:%d: %s: %s", d.path, n.Line, key, fmt.Sprintf(format, args...)))
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func (d *yamlDecoder) mapping(n *yaml.Node, v reflect.Value, prefix string) {
	n = resolveAlias(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		what := strings.TrimSuffix(prefix, ".")
		if what == "" {
			what = "top level"
		}
		d.fail(n, what, "want a mapping of keys to values")
		return
	}
	t := v.Type()
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], resolveAlias(n.Content[i+1])
		key := prefix + kn.Value
		if first, dup := seen[kn.Value]; dup {
			d.fail(kn, key, "duplicate key (first set on line %d)", first)
			continue
		}
		seen[kn.Value] = kn.Line
		fi := fieldByYAMLName(t, kn.Value)
		if fi < 0 {
			d.fail(kn, key, "unknown key")
			continue
		}
		fv := v.Field(fi)
		if isSection(fv.Type()) {
			d.mapping(vn, fv, key+".")
			continue
		}
		if isNull(vn) {
			continue
		}
		if fv.Kind() == reflect.Slice {
			d.list(vn, fv, key)
			continue
		}
		if vn.Kind != yaml.ScalarNode {
			d.fail(vn, key, "want a single value, not a list or mapping")
			continue
		}
		if err := setValue(fv, vn.Value); err != nil {
			d.fail(vn, key, "%v", err)
		}
	}
}

// list sets a list key from a YAML sequence of single values.
func (d *yamlDecoder) list(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, key, "want a list (e.g. [a, b]), not a single value or mapping")
		return
	}
	var items []string
	for _, item := range n.Content {
		item = resolveAlias(item)
		if item.Kind != yaml.ScalarNode || isNull(item) {
			d.fail(item, key, "want a list of single values")
			return
		}
		items = append(items, item.Value)
	}
	if err := setList(v, items); err != nil {
		d.fail(n, key, "%v", err)
	}
}

// setList sets a list of strings; an empty list is nil, as in Default.
func setList(v reflect.Value, items []string) error {
	if v.Type().Elem().Kind() != reflect.String {
		panic("config: unsupported list element kind " + v.Type().Elem().Kind().String())
	}
	if len(items) == 0 {
		v.SetZero()
		return nil
	}
	v.Set(reflect.ValueOf(slices.Clone(items)).Convert(v.Type()))
	return nil
}

func fieldByYAMLName(t reflect.Type, name string) int {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == name {
			return i
		}
	}
	return -1
}

// problems prefixes an error and, when it holds several, lists them one a
// line. errors.Is and errors.As still see every one.
func problems(prefix string, err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	if len(list) <= 1 {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	return &problemList{prefix: prefix, errs: list}
}

type problemList struct {
	prefix string
	errs   []error
}

func (p *problemList) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", p.prefix, len(p.errs))
	for _, e := range p.errs {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

func (p *problemList) Unwrap() []error { return p.errs }

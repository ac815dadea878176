package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func noEnv(string) (string, bool) { return "", false }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "soma.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() does not validate: %v", err)
	}
	if c.SigningKeyPath != filepath.Join("data", "signing.key") ||
		c.Database.SQLitePath != filepath.Join("data", "soma.db") ||
		c.Media.Path != filepath.Join("data", "media") ||
		c.ClientAPI.PublicBaseURL != "http://127.0.0.1:8008" {
		t.Fatalf("derived defaults: %+v", c)
	}
	got, err := load("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("Load(\"\") = %+v, want Default() %+v", got, c)
	}
}

func TestSampleLoadsAsDefault(t *testing.T) {
	got, err := load(writeFile(t, SampleYAML()), noEnv)
	if err != nil {
		t.Fatalf("sample does not load: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("sample loads as %+v, want Default() %+v", got, want)
	}
}

// TestSampleDocumentsEveryKey: each key appears in the sample, with a
// comment above it or above its section.
func TestSampleDocumentsEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(SampleYAML()), &doc); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind == yaml.MappingNode {
				walk(v, prefix+k.Value+".")
				continue
			}
			found[prefix+k.Value] = true
			if k.HeadComment == "" {
				t.Errorf("sample key %s has no comment", prefix+k.Value)
			}
		}
	}
	walk(doc.Content[0], "")
	for _, k := range Keys() {
		if !found[k] {
			t.Errorf("sample lacks key %s", k)
		}
	}
}

// otherValue returns a valid value for key that differs from its default,
// as env text.
func otherValue(t *testing.T, key string) string {
	v := map[string]string{
		"server_name":                       "matrix.example.org:8448",
		"data_dir":                          "/var/lib/soma",
		"signing_key_path":                  "/etc/soma/key",
		"client_api.listen":                 "[::1]:9000",
		"client_api.public_base_url":        "https://matrix.example.org",
		"database.backend":                  "postgres",
		"database.sqlite_path":              "/tmp/x.db",
		"database.sqlite_driver":            "mattn",
		"database.postgres_dsn":             "postgres://127.0.0.1/soma",
		"database.max_open_conns":           "7",
		"registration.enabled":              "false",
		"registration.shared_secret":        "sixteen-chars-at-least",
		"rooms.default_version":             "10",
		"rooms.idle_timeout":                "90s",
		"rooms.request_timeout":             "2m",
		"rooms.max_queued":                  "50",
		"rate_limits.enabled":               "false",
		"rate_limits.trust_forwarded_for":   "true",
		"rate_limits.per_user.rate":         "2.5",
		"rate_limits.per_user.burst":        "7",
		"rate_limits.per_ip.rate":           "1e3",
		"rate_limits.per_ip.burst":          "9",
		"rate_limits.login.rate":            "0.01",
		"rate_limits.login.burst":           "1",
		"log.level":                         "debug",
		"log.format":                        "console",
		"metrics.listen":                    "[::1]:9100",
		"metrics.max_room_series":           "5",
		"metrics.pprof":                     "true",
		"debug.fault_injection":             "true",
		"presence.enabled":                  "false",
		"push.enabled":                      "false",
		"turn.uris":                         "turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349",
		"turn.shared_secret":                "coturn-secret",
		"turn.user_lifetime":                "24h",
		"turn.username":                     "soma",
		"turn.password":                     "turn-password",
		"media.path":                        "/srv/soma-media",
		"media.max_upload_size":             "1048576",
		"federation.listen":                 "0.0.0.0:8448",
		"federation.tls_cert_path":          "/etc/soma/fed.crt",
		"federation.tls_key_path":           "/etc/soma/fed.key",
		"federation.skip_tls_verify":        "true",
		"federation.allow_private_networks": "true",
		"federation.key_validity":           "48h",
		"federation.old_verify_keys":        "ed25519:old AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 1700000000000",
		"federation.well_known_server":      "fed.example.org:443",
		"federation.retry_min":              "5s",
		"federation.retry_max":              "2h",
	}[key]
	if v == "" {
		t.Fatalf("test has no value for key %s: add one", key)
	}
	return v
}

func TestEveryKeyHasAnEnvOverride(t *testing.T) {
	root := reflect.ValueOf(Default()).Elem()
	for _, f := range leafFields() {
		t.Run(f.key, func(t *testing.T) {
			name := EnvVar(f.key)
			env := map[string]string{name: otherValue(t, f.key)}
			if f.key == "database.backend" {
				env["SOMA_DATABASE_POSTGRES_DSN"] = "postgres://127.0.0.1/soma"
			}
			// TURN credentials need URIs, and URIs need credentials.
			for k, v := range turnCompanions[f.key] {
				env[k] = v
			}
			c, err := load("", envMap(env))
			if err != nil {
				t.Fatalf("%s=%s: %v", name, env[name], err)
			}
			got := reflect.ValueOf(c).Elem().FieldByIndex(f.index).Interface()
			if reflect.DeepEqual(got, root.FieldByIndex(f.index).Interface()) {
				t.Fatalf("%s=%s left %s at its default %v", name, env[name], f.key, got)
			}
		})
	}
}

// turnCompanions are the other turn keys a turn key needs to validate.
var turnCompanions = map[string]map[string]string{
	"turn.uris":          {"SOMA_TURN_SHARED_SECRET": "s"},
	"turn.shared_secret": {"SOMA_TURN_URIS": "turn:t.example.org"},
	"turn.username":      {"SOMA_TURN_URIS": "turn:t.example.org", "SOMA_TURN_PASSWORD": "p"},
	"turn.password":      {"SOMA_TURN_URIS": "turn:t.example.org", "SOMA_TURN_USERNAME": "u"},
}

func TestTURNConfig(t *testing.T) {
	p := writeFile(t, "turn:\n  uris:\n    - turn:turn.example.org:3478?transport=udp\n    - \"turns:turn.example.org:5349\"\n  shared_secret: s3cret\n  user_lifetime: 12h\n")
	c, err := load(p, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := TURNConfig{
		URIs:         []string{"turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"},
		SharedSecret: "s3cret", UserLifetime: Duration{12 * time.Hour},
	}
	if !reflect.DeepEqual(c.TURN, want) {
		t.Fatalf("turn = %+v, want %+v", c.TURN, want)
	}
	// The env list is comma-separated and replaces the file's.
	c, err = load(p, envMap(map[string]string{"SOMA_TURN_URIS": " turn:a.example.org ,turns:b.example.org,"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"turn:a.example.org", "turns:b.example.org"}; !reflect.DeepEqual(c.TURN.URIs, want) {
		t.Fatalf("turn.uris from env = %q, want %q", c.TURN.URIs, want)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"single value for a list", "turn:\n  uris: turn:a.example.org\n", `:2: turn.uris: want a list`},
		{"mapping in a list", "turn:\n  uris:\n    - {a: b}\n", `:3: turn.uris: want a list of single values`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(writeFile(t, tc.yaml), noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestEnvOverridesFileAndDerivesFromIt(t *testing.T) {
	p := writeFile(t, "server_name: file.example\ndata_dir: /srv/soma\nrooms:\n  idle_timeout: 1m\n")
	c, err := load(p, envMap(map[string]string{
		"SOMA_SERVER_NAME":          "env.example",
		"SOMA_ROOMS_IDLE_TIMEOUT":   "2h",
		"SOMA_CLIENT_API_LISTEN":    "0.0.0.0:8008",
		"SOMA_REGISTRATION_ENABLED": "false",
		"SOMA_LOG_LEVEL":            "", // empty: unset
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerName != "env.example" || c.Rooms.IdleTimeout.Duration != 2*time.Hour || c.Registration.Enabled || c.Log.Level != "info" {
		t.Fatalf("overrides not applied: %+v", c)
	}
	if c.SigningKeyPath != "/srv/soma/signing.key" || c.Database.SQLitePath != "/srv/soma/soma.db" {
		t.Fatalf("paths not derived from data_dir: %q %q", c.SigningKeyPath, c.Database.SQLitePath)
	}
	if c.ClientAPI.PublicBaseURL != "http://localhost:8008" {
		t.Fatalf("public_base_url = %q", c.ClientAPI.PublicBaseURL)
	}
}

func TestBadEnvValueNamesTheVariable(t *testing.T) {
	_, err := load("", envMap(map[string]string{
		"SOMA_REGISTRATION_ENABLED":    "maybe",
		"SOMA_ROOMS_IDLE_TIMEOUT":      "300",
		"SOMA_DATABASE_MAX_OPEN_CONNS": "many",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`SOMA_REGISTRATION_ENABLED: invalid boolean "maybe"`,
		`SOMA_ROOMS_IDLE_TIMEOUT: invalid duration "300"`,
		`SOMA_DATABASE_MAX_OPEN_CONNS: invalid integer "many"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestFileErrorsNameKeyAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "server_nam: x\n", `:1: server_nam: unknown key`},
		{"unknown nested key", "database:\n  backend: sqlite\n  dsn: x\n", `:3: database.dsn: unknown key`},
		{"bad bool", "registration:\n  enabled: yes\n", `:2: registration.enabled: invalid boolean "yes"`},
		{"bad int", "database:\n  max_open_conns: 2.5\n", `:2: database.max_open_conns: invalid integer "2.5"`},
		{"bad number", "rate_limits:\n  per_ip:\n    rate: fast\n", `:3: rate_limits.per_ip.rate: invalid number "fast"`},
		{"bare number duration", "rooms:\n  idle_timeout: 300\n", `:2: rooms.idle_timeout: invalid duration "300"`},
		{"list for a value", "server_name: [a, b]\n", `:1: server_name: want a single value`},
		{"value for a section", "database: sqlite\n", `:1: database: want a mapping`},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", `:3: log.level: duplicate key (first set on line 2)`},
		{"not a mapping", "- a\n", `:1: top level: want a mapping`},
		{"syntax error", "server_name: [\n", `yaml:`},
		{"two documents", "server_name: a\n---\nserver_name: b\n", `want a single YAML document`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(writeFile(t, tc.yaml), noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFileNullAndEmptyKeepDefaults(t *testing.T) {
	for _, content := range []string{"", "# nothing\n", "database:\n", "log:\n  level:\n", "server_name: ~\n"} {
		c, err := load(writeFile(t, content), noEnv)
		if err != nil {
			t.Fatalf("%q: %v", content, err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Fatalf("%q: got %+v, want defaults", content, c)
		}
	}
}

func TestMissingFileIsAnError(t *testing.T) {
	_, err := load(filepath.Join(t.TempDir(), "nope.yaml"), noEnv)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error = %v, want ErrNotExist", err)
	}
}

func TestValidateMessages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string // "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"federation listen", func(c *Config) { c.Federation.Listen = "0.0.0.0:8448" }, ""},
		{"federation listen bad", func(c *Config) { c.Federation.Listen = "8448" }, `federation.listen: "8448" is not host:port`},
		{"federation without cert", func(c *Config) { c.Federation.Listen = ":8448"; c.Federation.TLSCertPath = "" }, `federation.tls_cert_path: required when federation.listen is set`},
		{"federation key validity", func(c *Config) { c.Federation.KeyValidity = Duration{time.Minute} }, `federation.key_validity: must be at least 1h, got 1m0s`},
		{"federation old key", func(c *Config) {
			c.Federation.OldVerifyKeys = []string{"ed25519:a_1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 1700000000000"}
		}, ""},
		{"federation old key fields", func(c *Config) { c.Federation.OldVerifyKeys = []string{"ed25519:a"} }, `federation.old_verify_keys: "ed25519:a": want`},
		{"federation old key ID", func(c *Config) {
			c.Federation.OldVerifyKeys = []string{"curve:a AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 1"}
		}, `key ID "curve:a" is not`},
		{"federation old key length", func(c *Config) { c.Federation.OldVerifyKeys = []string{"ed25519:a AAAA 1"} }, `the public key is not 32 bytes`},
		{"federation old key time", func(c *Config) {
			c.Federation.OldVerifyKeys = []string{"ed25519:a AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA yesterday"}
		}, `expired_ts "yesterday" is not`},
		{"federation well-known", func(c *Config) { c.Federation.WellKnownServer = "https://x" }, `federation.well_known_server: "https://x": invalid port`},
		{"federation retry min", func(c *Config) { c.Federation.RetryMin = Duration{} }, `federation.retry_min: must be positive, got 0s`},
		{"federation retry max", func(c *Config) { c.Federation.RetryMax = Duration{time.Second} }, `federation.retry_max: must be at least federation.retry_min (2s), got 1s`},
		{"mysql", func(c *Config) { c.Database.Backend = "mysql" }, `database.backend: must be "sqlite" or "postgres", got "mysql"`},
		{"postgres without dsn", func(c *Config) { c.Database.Backend = "postgres" }, `database.postgres_dsn: required when database.backend is "postgres"`},
		{"postgres with dsn", func(c *Config) { c.Database.Backend = "postgres"; c.Database.PostgresDSN = "postgres://x/y" }, ""},
		{"sqlite driver", func(c *Config) { c.Database.SQLiteDriver = "cgo" }, `database.sqlite_driver: must be "modernc" or "mattn", got "cgo"`},
		{"max conns", func(c *Config) { c.Database.MaxOpenConns = 0 }, `database.max_open_conns: must be at least 1, got 0`},
		{"empty server name", func(c *Config) { c.ServerName = "" }, `server_name: must not be empty`},
		{"server name with space", func(c *Config) { c.ServerName = "exa mple.org" }, `server_name: "exa mple.org": invalid character ' '`},
		{"server name with scheme", func(c *Config) { c.ServerName = "https://example.org" }, `server_name: "https://example.org": invalid port "//example.org"`},
		{"server name port range", func(c *Config) { c.ServerName = "example.org:70000" }, `server_name: "example.org:70000": port 70000 out of range`},
		{"server name port 0", func(c *Config) { c.ServerName = "example.org:0" }, `server_name: "example.org:0": port 0 out of range`},
		{"server name empty port", func(c *Config) { c.ServerName = "example.org:" }, `server_name: "example.org:": invalid port ""`},
		{"server name port", func(c *Config) { c.ServerName = "matrix.example.org:8448" }, ""},
		{"server name ipv4", func(c *Config) { c.ServerName = "1.2.3.4:1234" }, ""},
		{"server name ipv6", func(c *Config) { c.ServerName = "[1234:5678::abcd]:5678" }, ""},
		{"server name bare ipv6", func(c *Config) { c.ServerName = "1234:5678::abcd" }, `server_name: "1234:5678::abcd": invalid character ':'`},
		{"server name bad ipv6", func(c *Config) { c.ServerName = "[1.2.3.4]" }, `server_name: "[1.2.3.4]": "1.2.3.4" is not an IPv6 address`},
		{"server name unclosed", func(c *Config) { c.ServerName = "[::1" }, `lacks its closing ']'`},
		{"listen without port", func(c *Config) { c.ClientAPI.Listen = "127.0.0.1" }, `client_api.listen: "127.0.0.1" is not host:port`},
		{"listen bad port", func(c *Config) { c.ClientAPI.Listen = "127.0.0.1:http" }, `client_api.listen: "127.0.0.1:http": invalid port "http"`},
		{"listen bad host", func(c *Config) { c.ClientAPI.Listen = "a b:80" }, `client_api.listen: "a b:80": host "a b" is neither`},
		{"listen all interfaces", func(c *Config) { c.ClientAPI.Listen = ":8008" }, ""},
		{"listen port 0", func(c *Config) { c.ClientAPI.Listen = "127.0.0.1:0" }, ""},
		{"base url scheme", func(c *Config) { c.ClientAPI.PublicBaseURL = "ftp://x" }, `client_api.public_base_url: "ftp://x": scheme must be http or https`},
		{"base url relative", func(c *Config) { c.ClientAPI.PublicBaseURL = "matrix.example.org" }, `client_api.public_base_url: "matrix.example.org" is not an absolute URL`},
		{"room version", func(c *Config) { c.Rooms.DefaultVersion = "12" }, `rooms.default_version: must be one of "10", "11", got "12"`},
		{"idle timeout", func(c *Config) { c.Rooms.IdleTimeout.Duration = 0 }, `rooms.idle_timeout: must be positive, got 0s`},
		{"request timeout", func(c *Config) { c.Rooms.RequestTimeout.Duration = -time.Second }, `rooms.request_timeout: must be positive, got -1s`},
		{"max queued", func(c *Config) { c.Rooms.MaxQueued = 0 }, `rooms.max_queued: must be at least 1, got 0`},
		{"user rate zero", func(c *Config) { c.RateLimits.PerUser.Rate = 0 }, `rate_limits.per_user.rate: must be a positive number of requests per second, got 0`},
		{"ip rate negative", func(c *Config) { c.RateLimits.PerIP.Rate = -1 }, `rate_limits.per_ip.rate: must be a positive number of requests per second, got -1`},
		{"login rate NaN", func(c *Config) { c.RateLimits.Login.Rate = math.NaN() }, `rate_limits.login.rate: must be a positive number of requests per second, got NaN`},
		{"user rate infinite", func(c *Config) { c.RateLimits.PerUser.Rate = math.Inf(1) }, `rate_limits.per_user.rate: must be a positive number of requests per second, got +Inf`},
		{"user burst zero", func(c *Config) { c.RateLimits.PerUser.Burst = 0 }, `rate_limits.per_user.burst: must be at least 1, got 0`},
		{"login burst negative", func(c *Config) { c.RateLimits.Login.Burst = -3 }, `rate_limits.login.burst: must be at least 1, got -3`},
		{"limits off still validated", func(c *Config) { c.RateLimits.Enabled = false; c.RateLimits.PerIP.Burst = 0 }, `rate_limits.per_ip.burst: must be at least 1, got 0`},
		{"fractional rate", func(c *Config) { c.RateLimits.PerUser.Rate = 0.5 }, ""},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: must be one of "trace", "debug", "info", "warn", "error", got "verbose"`},
		{"log format", func(c *Config) { c.Log.Format = "text" }, `log.format: must be "json" or "console", got "text"`},
		{"shared secret too short", func(c *Config) { c.Registration.SharedSecret = "hunter2" }, `registration.shared_secret: must be at least 16 characters when set, got 7`},
		{"shared secret long enough", func(c *Config) { c.Registration.SharedSecret = "0123456789abcdef" }, ""},
		{"data dir", func(c *Config) { c.DataDir = "" }, `data_dir: must not be empty`},
		{"signing key path", func(c *Config) { c.SigningKeyPath = "" }, `signing_key_path: must not be empty`},
		{"metrics off", func(c *Config) { c.Metrics.Listen = "" }, ""},
		{"metrics listen", func(c *Config) { c.Metrics.Listen = "9092" }, `metrics.listen: "9092" is not host:port`},
		{"room series negative", func(c *Config) { c.Metrics.MaxRoomSeries = -1 }, `metrics.max_room_series: must be 0 or more, got -1`},
		{"room series off", func(c *Config) { c.Metrics.MaxRoomSeries = 0 }, ""},
		{"turn shared secret", func(c *Config) { c.TURN.URIs = []string{"turn:t.example.org"}; c.TURN.SharedSecret = "s" }, ""},
		{"turn static", func(c *Config) {
			c.TURN.URIs = []string{"turns:t.example.org:5349"}
			c.TURN.Username, c.TURN.Password = "u", "p"
		}, ""},
		{"turn uri scheme", func(c *Config) { c.TURN.URIs = []string{"stun:t.example.org"}; c.TURN.SharedSecret = "s" }, `turn.uris: "stun:t.example.org" is not a TURN URI`},
		{"turn uri with a comma", func(c *Config) { c.TURN.URIs = []string{"turn:a,turn:b"}; c.TURN.SharedSecret = "s" }, `turn.uris: "turn:a,turn:b" is not a TURN URI`},
		{"turn uris without credentials", func(c *Config) { c.TURN.URIs = []string{"turn:t.example.org"} }, `turn.uris: need credentials`},
		{"turn secret without uris", func(c *Config) { c.TURN.SharedSecret = "s" }, `turn.uris: required when turn credentials are set`},
		{"turn both credentials", func(c *Config) {
			c.TURN.URIs = []string{"turn:t.example.org"}
			c.TURN.SharedSecret, c.TURN.Username, c.TURN.Password = "s", "u", "p"
		}, `turn.shared_secret: set either`},
		{"turn username alone", func(c *Config) { c.TURN.URIs = []string{"turn:t.example.org"}; c.TURN.Username = "u" }, `turn.username: turn.username and turn.password go together`},
		{"turn lifetime", func(c *Config) { c.TURN.UserLifetime.Duration = 0 }, `turn.user_lifetime: must be positive, got 0s`},
		{"media path", func(c *Config) { c.Media.Path = "" }, `media.path: must not be empty`},
		{"media upload size", func(c *Config) { c.Media.MaxUploadSize = 0 }, `media.max_upload_size: must be at least 1 byte, got 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	p := writeFile(t, "server_name: \"\"\ndatabase:\n  backend: mysql\nlog:\n  level: loud\n  format: xml\n")
	_, err := load(p, noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"4 problems", "server_name:", "database.backend:", "log.level:", "log.format:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestListenIsLoopback(t *testing.T) {
	for listen, want := range map[string]bool{
		"127.0.0.1:8008": true,
		"127.5.5.5:8008": true,
		"[::1]:8008":     true,
		"localhost:8008": true,
		"0.0.0.0:8008":   false,
		":8008":          false,
		"[::]:8008":      false,
		"10.0.0.1:8008":  false,
		"example.org:80": false,
		"garbage":        false,
	} {
		c := Default()
		c.ClientAPI.Listen = listen
		if got := c.ListenIsLoopback(); got != want {
			t.Errorf("ListenIsLoopback(%q) = %v, want %v", listen, got, want)
		}
	}
}

func TestPublicBaseURLDerivation(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8008":  "http://127.0.0.1:8008",
		"[::1]:8008":      "http://[::1]:8008",
		"[::]:8008":       "http://localhost:8008",
		":9000":           "http://localhost:9000",
		"matrix.local:80": "http://matrix.local:80",
	} {
		c, err := load("", envMap(map[string]string{"SOMA_CLIENT_API_LISTEN": listen}))
		if err != nil {
			t.Fatal(err)
		}
		if c.ClientAPI.PublicBaseURL != want {
			t.Errorf("listen %q: public_base_url = %q, want %q", listen, c.ClientAPI.PublicBaseURL, want)
		}
	}
	c, err := load("", envMap(map[string]string{"SOMA_CLIENT_API_PUBLIC_BASE_URL": "https://m.example.org/"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientAPI.PublicBaseURL != "https://m.example.org" {
		t.Errorf("trailing slash kept: %q", c.ClientAPI.PublicBaseURL)
	}
}

func TestEnvVarNames(t *testing.T) {
	for key, want := range map[string]string{
		"server_name":           "SOMA_SERVER_NAME",
		"client_api.listen":     "SOMA_CLIENT_API_LISTEN",
		"database.postgres_dsn": "SOMA_DATABASE_POSTGRES_DSN",
		"rooms.idle_timeout":    "SOMA_ROOMS_IDLE_TIMEOUT",
	} {
		if got := EnvVar(key); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestMetricsListenEmptyInFileTurnsMetricsOff(t *testing.T) {
	c, err := load(writeFile(t, "metrics:\n  listen: \"\"\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Listen != "" {
		t.Fatalf("metrics.listen = %q, want \"\" (off)", c.Metrics.Listen)
	}
	if c, _ := load(writeFile(t, "metrics:\n  listen:\n"), noEnv); c.Metrics.Listen != Default().Metrics.Listen {
		t.Fatalf("metrics.listen without a value = %q, want the default", c.Metrics.Listen)
	}
}

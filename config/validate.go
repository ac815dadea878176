package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks every key and reports all problems at once (errors.Join),
// each message starting with the key it is about.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if err := ValidateServerName(c.ServerName); err != nil {
		bad("server_name", "%v", err)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.SigningKeyPath == "" {
		bad("signing_key_path", "must not be empty")
	}

	if err := validateListen(c.ClientAPI.Listen); err != nil {
		bad("client_api.listen", "%v", err)
	}
	if err := validateBaseURL(c.ClientAPI.PublicBaseURL); err != nil {
		bad("client_api.public_base_url", "%v", err)
	}

	db := c.Database
	switch db.Backend {
	case BackendSQLite:
		if db.SQLitePath == "" {
			bad("database.sqlite_path", "required when database.backend is %q", BackendSQLite)
		}
	case BackendPostgres:
		if db.PostgresDSN == "" {
			bad("database.postgres_dsn", "required when database.backend is %q", BackendPostgres)
		}
	default:
		bad("database.backend", "must be %q or %q, got %q", BackendSQLite, BackendPostgres, db.Backend)
	}
	if db.SQLiteDriver != SQLiteDriverModernc && db.SQLiteDriver != SQLiteDriverMattn {
		bad("database.sqlite_driver", "must be %q or %q, got %q", SQLiteDriverModernc, SQLiteDriverMattn, db.SQLiteDriver)
	}
	if db.MaxOpenConns < 1 {
		bad("database.max_open_conns", "must be at least 1, got %d", db.MaxOpenConns)
	}

	if n := len(c.Registration.SharedSecret); n > 0 && n < MinSharedSecretLength {
		bad("registration.shared_secret", "must be at least %d characters when set, got %d", MinSharedSecretLength, n)
	}

	if !slices.Contains(SupportedRoomVersions, c.Rooms.DefaultVersion) {
		bad("rooms.default_version", "must be one of %s, got %q", quoteList(SupportedRoomVersions), c.Rooms.DefaultVersion)
	}
	if c.Rooms.IdleTimeout.Duration <= 0 {
		bad("rooms.idle_timeout", "must be positive, got %s", c.Rooms.IdleTimeout)
	}
	if c.Rooms.MaxQueued < 1 {
		bad("rooms.max_queued", "must be at least 1, got %d", c.Rooms.MaxQueued)
	}
	if c.Rooms.RequestTimeout.Duration <= 0 {
		bad("rooms.request_timeout", "must be positive, got %s", c.Rooms.RequestTimeout)
	}

	for _, l := range []struct {
		key   string
		limit RateLimit
	}{
		{"rate_limits.per_user", c.RateLimits.PerUser},
		{"rate_limits.per_ip", c.RateLimits.PerIP},
		{"rate_limits.login", c.RateLimits.Login},
	} {
		if !(l.limit.Rate > 0) || math.IsInf(l.limit.Rate, 0) {
			bad(l.key+".rate", "must be a positive number of requests per second, got %v", l.limit.Rate)
		}
		if l.limit.Burst < 1 {
			bad(l.key+".burst", "must be at least 1, got %d", l.limit.Burst)
		}
	}

	if !slices.Contains(LogLevels, c.Log.Level) {
		bad("log.level", "must be one of %s, got %q", quoteList(LogLevels), c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		bad("log.format", "must be \"json\" or \"console\", got %q", c.Log.Format)
	}

	if c.Metrics.Listen != "" {
		if err := validateListen(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%v", err)
		}
	}
	if c.Metrics.MaxRoomSeries < 0 {
		bad("metrics.max_room_series", "must be 0 or more, got %d", c.Metrics.MaxRoomSeries)
	}
	c.validateTURN(bad)
	if c.Media.Path == "" {
		bad("media.path", "must not be empty")
	}
	if c.Media.MaxUploadSize < 1 {
		bad("media.max_upload_size", "must be at least 1 byte, got %d", c.Media.MaxUploadSize)
	}
	c.validateFederation(bad)
	return errors.Join(errs...)
}

// validateFederation checks the federation section; the certificate files
// are only required when the listener is on.
func (c *Config) validateFederation(bad func(key, format string, args ...any)) {
	f := c.Federation
	if f.Listen != "" {
		if err := validateListen(f.Listen); err != nil {
			bad("federation.listen", "%v", err)
		}
		if f.TLSCertPath == "" {
			bad("federation.tls_cert_path", "required when federation.listen is set")
		}
		if f.TLSKeyPath == "" {
			bad("federation.tls_key_path", "required when federation.listen is set")
		}
	}
	if f.KeyValidity.Duration < time.Hour {
		bad("federation.key_validity", "must be at least 1h, got %s", f.KeyValidity)
	}
	for _, k := range f.OldVerifyKeys {
		if _, _, _, err := ParseOldVerifyKey(k); err != nil {
			bad("federation.old_verify_keys", "%v", err)
		}
	}
	if f.WellKnownServer != "" {
		if err := ValidateServerName(f.WellKnownServer); err != nil {
			bad("federation.well_known_server", "%v", err)
		}
	}
	if f.RetryMin.Duration <= 0 {
		bad("federation.retry_min", "must be positive, got %s", f.RetryMin)
	}
	if f.RetryMax.Duration < f.RetryMin.Duration {
		bad("federation.retry_max", "must be at least federation.retry_min (%s), got %s", f.RetryMin, f.RetryMax)
	}
}

// ParseOldVerifyKey reads one federation.old_verify_keys entry,
// "ed25519:<version> <unpadded base64 public key> <expired_ts>", where
// expired_ts is when the key stopped signing, in Unix milliseconds.
// somactl old-key-entry prints the entry of a key file.
func ParseOldVerifyKey(entry string) (keyID string, publicKey []byte, expiredTS int64, err error) {
	fields := strings.Fields(entry)
	if len(fields) != 3 {
		return "", nil, 0, fmt.Errorf("%q: want \"ed25519:<version> <base64 public key> <expired_ts in ms>\"", entry)
	}
	version, ok := strings.CutPrefix(fields[0], "ed25519:")
	if !ok || version == "" || strings.IndexFunc(version, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	}) >= 0 {
		return "", nil, 0, fmt.Errorf("%q: key ID %q is not \"ed25519:<letters, digits, _>\"", entry, fields[0])
	}
	publicKey, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(fields[1], "="))
	if err != nil || len(publicKey) != 32 {
		return "", nil, 0, fmt.Errorf("%q: the public key is not 32 bytes of base64", entry)
	}
	expiredTS, err = strconv.ParseInt(fields[2], 10, 64)
	if err != nil || expiredTS <= 0 {
		return "", nil, 0, fmt.Errorf("%q: expired_ts %q is not a time in milliseconds", entry, fields[2])
	}
	return fields[0], publicKey, expiredTS, nil
}

// validateTURN checks the turn section: URIs as the client API advertises
// them, and exactly one kind of credentials whenever there are URIs.
func (c *Config) validateTURN(bad func(key, format string, args ...any)) {
	t := c.TURN
	for _, u := range t.URIs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") || strings.ContainsAny(u, " \t\n,") {
			bad("turn.uris", "%q is not a TURN URI (want e.g. \"turn:turn.example.org:3478?transport=udp\" or \"turns:...\")", u)
		}
	}
	if t.UserLifetime.Duration <= 0 {
		bad("turn.user_lifetime", "must be positive, got %s", t.UserLifetime)
	}
	static := t.Username != "" || t.Password != ""
	switch {
	case t.SharedSecret != "" && static:
		bad("turn.shared_secret", "set either turn.shared_secret or turn.username and turn.password, not both")
	case static && (t.Username == "" || t.Password == ""):
		bad("turn.username", "turn.username and turn.password go together: set both or neither")
	case len(t.URIs) == 0 && (t.SharedSecret != "" || static):
		bad("turn.uris", "required when turn credentials are set")
	case len(t.URIs) > 0 && t.SharedSecret == "" && !static:
		bad("turn.uris", "need credentials: set turn.shared_secret, or turn.username and turn.password")
	}
}

// ValidateServerName checks the Matrix server name grammar: a DNS name, an
// IPv4 literal or a bracketed IPv6 literal, with an optional :port.
func ValidateServerName(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	host, port := name, ""
	if strings.HasPrefix(name, "[") {
		end := strings.IndexByte(name, ']')
		if end < 0 {
			return fmt.Errorf("%q: IPv6 literal lacks its closing ']'", name)
		}
		host, port = name[:end+1], name[end+1:]
		if port != "" && port[0] != ':' {
			return fmt.Errorf("%q: unexpected %q after the IPv6 literal", name, port)
		}
		if ip, err := netip.ParseAddr(host[1:end]); err != nil || !ip.Is6() || ip.Zone() != "" {
			return fmt.Errorf("%q: %q is not an IPv6 address", name, host[1:end])
		}
	} else {
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			host, port = name[:i], name[i:]
		}
		if host == "" {
			return fmt.Errorf("%q: missing host name", name)
		}
		if len(host) > 255 {
			return fmt.Errorf("%q: host name longer than 255 characters", name)
		}
		for _, r := range host {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				return fmt.Errorf("%q: invalid character %q (want a host name or IP literal with an optional :port)", name, r)
			}
		}
	}
	if port != "" {
		if err := validatePort(port[1:], false); err != nil {
			return fmt.Errorf("%q: %v", name, err)
		}
	}
	return nil
}

// validatePort accepts 1-5 decimal digits naming a port; 0 only when
// zeroOK (a listener asking the kernel for a free port).
func validatePort(p string, zeroOK bool) error {
	n, err := strconv.Atoi(p)
	if err != nil || len(p) > 5 || strings.ContainsAny(p, "+-") {
		return fmt.Errorf("invalid port %q", p)
	}
	if n > 65535 || n == 0 && !zeroOK {
		return fmt.Errorf("port %d out of range", n)
	}
	return nil
}

// validateListen checks a host:port listen address. An empty host means
// every interface; port 0 lets the kernel choose.
func validateListen(listen string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. \"127.0.0.1:8008\", \"[::]:8008\")", listen)
	}
	if err := validatePort(port, true); err != nil {
		return fmt.Errorf("%q: %v", listen, err)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if strings.Contains(host, ":") {
		return fmt.Errorf("%q: %q is not an IP address", listen, host)
	}
	if err := ValidateServerName(host); err != nil {
		return fmt.Errorf("%q: host %q is neither an IP address nor a host name", listen, host)
	}
	return nil
}

// validateBaseURL wants an absolute http(s) URL without query or fragment.
func validateBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL (e.g. \"https://matrix.example.org\")", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q: must not carry user info, a query or a fragment", s)
	}
	return nil
}

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

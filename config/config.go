// Package config is one typed config for a Soma node: YAML loading, defaults,
// env overrides, validation.
//
// Load applies, in order: the built-in defaults, the YAML file, the
// SOMA_* environment variables, the defaults derived from other keys (paths
// under data_dir, public_base_url from the listener), and Validate.
package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

// Config is everything a Soma node is configured with. Its yaml tags are the
// file's keys; the env variable of a key is SOMA_ followed by its path in
// upper snake case (database.postgres_dsn is SOMA_DATABASE_POSTGRES_DSN).
type Config struct {
	// ServerName is the Matrix server name: the domain of user and room IDs.
	ServerName string `yaml:"server_name"`
	// DataDir holds the node's files (signing key, SQLite database).
	DataDir string `yaml:"data_dir"`
	// SigningKeyPath is the federation signing key; default <data_dir>/signing.key.
	SigningKeyPath string `yaml:"signing_key_path"`

	ClientAPI    ClientAPIConfig    `yaml:"client_api"`
	Database     DatabaseConfig     `yaml:"database"`
	Registration RegistrationConfig `yaml:"registration"`
	Rooms        RoomsConfig        `yaml:"rooms"`
	RateLimits   RateLimitsConfig   `yaml:"rate_limits"`
	Log          LogConfig          `yaml:"log"`
	Metrics      MetricsConfig      `yaml:"metrics"`
	TURN         TURNConfig         `yaml:"turn"`
	Media        MediaConfig        `yaml:"media"`
	Presence     PresenceConfig     `yaml:"presence"`
	Federation   FederationConfig   `yaml:"federation"`
	Push         PushConfig         `yaml:"push"`
	Debug        DebugConfig        `yaml:"debug"`
}

// ClientAPIConfig is the Client-Server API listener.
type ClientAPIConfig struct {
	// Listen is the host:port the HTTP listener binds.
	Listen string `yaml:"listen"`
	// PublicBaseURL is how clients reach the node (well-known, redirects);
	// default http://<listen>, without a trailing slash.
	PublicBaseURL string `yaml:"public_base_url"`
}

// Database backends and SQLite drivers.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"

	SQLiteDriverModernc = "modernc"
	SQLiteDriverMattn   = "mattn"
)

// DatabaseConfig chooses and tunes the storage backend.
type DatabaseConfig struct {
	// Backend is BackendSQLite or BackendPostgres.
	Backend string `yaml:"backend"`
	// SQLitePath is the database file; default <data_dir>/soma.db.
	SQLitePath string `yaml:"sqlite_path"`
	// SQLiteDriver is SQLiteDriverModernc (pure Go) or SQLiteDriverMattn (cgo).
	SQLiteDriver string `yaml:"sqlite_driver"`
	// PostgresDSN is a pgx connection string; required for BackendPostgres.
	PostgresDSN string `yaml:"postgres_dsn"`
	// MaxOpenConns bounds the connection pool.
	MaxOpenConns int `yaml:"max_open_conns"`
}

// RegistrationConfig governs account registration.
type RegistrationConfig struct {
	// Enabled opens self-service registration (POST /register).
	Enabled bool `yaml:"enabled"`
	// SharedSecret, when set, enables Synapse's shared-secret registration
	// (/_synapse/admin/v1/register), which can create admins.
	SharedSecret string `yaml:"shared_secret"`
}

// MinSharedSecretLength is the shortest registration.shared_secret accepted.
const MinSharedSecretLength = 16

// RoomsConfig governs room actors.
type RoomsConfig struct {
	// DefaultVersion is the room version of new rooms.
	DefaultVersion string `yaml:"default_version"`
	// IdleTimeout is how long a room actor may be idle before it passivates.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// RequestTimeout bounds a request to a room actor.
	RequestTimeout Duration `yaml:"request_timeout"`
	// MaxQueued bounds the commands waiting for one room actor; past it
	// clients get M_LIMIT_EXCEEDED instead of the queue growing.
	MaxQueued int `yaml:"max_queued"`
}

// RateLimitsConfig throttles clients with token buckets: one per user, one
// per client address, and a stricter one per address for login and
// registration attempts.
type RateLimitsConfig struct {
	// Enabled switches every limit on or off (off for load tests).
	Enabled bool `yaml:"enabled"`
	// TrustForwardedFor takes the client address from the last entry of
	// X-Forwarded-For, for a listener reachable only through one reverse
	// proxy; otherwise the connection's peer address is the client's.
	TrustForwardedFor bool `yaml:"trust_forwarded_for"`
	// PerUser limits every authenticated request but /sync, by user ID.
	PerUser RateLimit `yaml:"per_user"`
	// PerIP limits every request, by client address (IPv6 by /64).
	PerIP RateLimit `yaml:"per_ip"`
	// Login limits POST /login and POST /register, by client address.
	Login RateLimit `yaml:"login"`
}

// RateLimit is a token bucket: Rate tokens a second refill it up to Burst,
// and each request takes one.
type RateLimit struct {
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// LogConfig is the zerolog setup.
type LogConfig struct {
	// Level is one of LogLevels.
	Level string `yaml:"level"`
	// Format is "json" or "console".
	Format string `yaml:"format"`
}

// MetricsConfig is the Prometheus endpoint.
type MetricsConfig struct {
	// Listen is the host:port serving /metrics; "" serves none.
	Listen string `yaml:"listen"`
	// MaxRoomSeries caps the rooms exported with a room_id label, the
	// busiest first; 0 exports per-kind totals only.
	MaxRoomSeries int `yaml:"max_room_series"`
	// PProf serves Go's profiler at /debug/pprof/ on the metrics listener,
	// to find where a server spends its CPU. Off by default: a profile
	// shows what the process holds.
	PProf bool `yaml:"pprof"`
}

// TURNConfig is the TURN server that clients get credentials for from
// GET /voip/turnServer, for VoIP calls through NAT. Without URIs (the
// default) the endpoint answers {}.
type TURNConfig struct {
	// URIs are the TURN server's URIs ("turn:turn.example.org:3478?transport=udp",
	// "turns:..."), given to clients as they are.
	URIs []string `yaml:"uris"`
	// SharedSecret is the secret shared with the TURN server (coturn's
	// static-auth-secret): each client gets credentials valid for
	// UserLifetime. Set it, or Username and Password.
	SharedSecret string `yaml:"shared_secret"`
	// UserLifetime is how long shared-secret credentials stay valid.
	UserLifetime Duration `yaml:"user_lifetime"`
	// Username and Password are static credentials given to every client,
	// for a TURN server without a shared secret.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// MediaConfig is the media repository (uploads, downloads, thumbnails).
type MediaConfig struct {
	// Path is the directory of the uploaded files and thumbnails, each
	// named by its SHA-256; default <data_dir>/media.
	Path string `yaml:"path"`
	// MaxUploadSize is the largest upload accepted, in bytes.
	MaxUploadSize int64 `yaml:"max_upload_size"`
}

// PresenceConfig is user presence (online, unavailable, offline).
type PresenceConfig struct {
	// Enabled tracks presence and shows it in /sync; off, presence updates
	// are accepted and ignored and everyone shows offline.
	Enabled bool `yaml:"enabled"`
}

// FederationConfig is the Server-Server API: the TLS listener other
// homeservers call, and how this server calls them.
type FederationConfig struct {
	// Listen is the host:port of the federation TLS listener; "" (the
	// default) turns federation off, inbound and outbound: a server that
	// cannot be reached cannot have its signatures checked by others.
	Listen string `yaml:"listen"`
	// TLSCertPath and TLSKeyPath are the PEM certificate chain and key the
	// listener serves; default <data_dir>/federation.crt and .key.
	TLSCertPath string `yaml:"tls_cert_path"`
	TLSKeyPath  string `yaml:"tls_key_path"`
	// SkipTLSVerify accepts any certificate from remote servers (self-
	// signed ones in development and tests). Never in production: the
	// spec requires a valid certificate for the server name.
	SkipTLSVerify bool `yaml:"skip_tls_verify"`
	// AllowPrivateNetworks lets outbound federation requests reach
	// loopback and private addresses (servers on one machine in development
	// and tests); off, a remote server name resolving to one is refused.
	AllowPrivateNetworks bool `yaml:"allow_private_networks"`
	// KeyValidity is how far ahead valid_until_ts of this server's
	// published keys lies: how long others may cache them.
	KeyValidity Duration `yaml:"key_validity"`
	// OldVerifyKeys are keys this server signed with before the current
	// one, published under old_verify_keys so that what they signed still
	// verifies: "ed25519:<version> <unpadded base64 public key>
	// <expired_ts>" each (ParseOldVerifyKey).
	OldVerifyKeys []string `yaml:"old_verify_keys"`
	// WellKnownServer, when set, is served as m.server in
	// /.well-known/matrix/server on the client listener, delegating
	// federation for server_name to that host[:port].
	WellKnownServer string `yaml:"well_known_server"`
	// RetryMin is how long the sender to a remote server waits after a
	// failed transaction before sending it again; each further failure
	// doubles the wait, up to RetryMax. A request from that server resets it.
	RetryMin Duration `yaml:"retry_min"`
	RetryMax Duration `yaml:"retry_max"`
}

// PushConfig is push notifications to HTTP push gateways.
type PushConfig struct {
	// Enabled sends notifications to the gateways users' pushers name; off,
	// pushers can still be set and listed but nothing is sent.
	Enabled bool `yaml:"enabled"`
}

// DebugConfig holds switches for testing a deployment, all off by default.
type DebugConfig struct {
	// FaultInjection lets admins make a room actor panic on purpose
	// (POST /_soma/admin/v1/rooms/{roomId}/fault), to see supervision,
	// restarts and alerting at work.
	FaultInjection bool `yaml:"fault_injection"`
}

// SupportedRoomVersions are the values rooms.default_version accepts.
var SupportedRoomVersions = []string{"10", "11"}

// LogLevels are the values log.level accepts, most verbose first.
var LogLevels = []string{"trace", "debug", "info", "warn", "error"}

// Default returns the configuration used when nothing is configured, with
// the derived defaults filled in.
func Default() *Config {
	c := base()
	c.deriveDefaults()
	return c
}

// base is Default without the derived values: what a file and the
// environment are applied on top of.
func base() *Config {
	c := &Config{
		ServerName: "localhost",
		DataDir:    "./data",
	}
	c.ClientAPI.Listen = "127.0.0.1:8008"
	c.Database.Backend = BackendSQLite
	c.Database.SQLiteDriver = SQLiteDriverModernc
	c.Database.MaxOpenConns = 20
	c.Registration.Enabled = true
	c.Rooms.DefaultVersion = "11"
	c.Rooms.IdleTimeout = Duration{5 * time.Minute}
	c.Rooms.RequestTimeout = Duration{30 * time.Second}
	c.Rooms.MaxQueued = 1000
	c.RateLimits.Enabled = true
	c.RateLimits.PerUser = RateLimit{Rate: 20, Burst: 200}
	c.RateLimits.PerIP = RateLimit{Rate: 50, Burst: 500}
	c.RateLimits.Login = RateLimit{Rate: 0.2, Burst: 10}
	c.Log.Level = "info"
	c.Log.Format = "json"
	c.Metrics.Listen = "127.0.0.1:9092"
	c.Metrics.MaxRoomSeries = 100
	c.TURN.UserLifetime = Duration{time.Hour}
	c.Media.MaxUploadSize = 50 << 20
	c.Presence.Enabled = true
	c.Federation.KeyValidity = Duration{24 * time.Hour}
	c.Federation.RetryMin = Duration{2 * time.Second}
	c.Federation.RetryMax = Duration{time.Hour}
	c.Push.Enabled = true
	return c
}

// deriveDefaults fills the keys whose defaults depend on other keys.
func (c *Config) deriveDefaults() {
	if c.SigningKeyPath == "" && c.DataDir != "" {
		c.SigningKeyPath = filepath.Join(c.DataDir, "signing.key")
	}
	if c.Database.SQLitePath == "" && c.DataDir != "" {
		c.Database.SQLitePath = filepath.Join(c.DataDir, "soma.db")
	}
	if c.Media.Path == "" && c.DataDir != "" {
		c.Media.Path = filepath.Join(c.DataDir, "media")
	}
	if c.Federation.TLSCertPath == "" && c.DataDir != "" {
		c.Federation.TLSCertPath = filepath.Join(c.DataDir, "federation.crt")
	}
	if c.Federation.TLSKeyPath == "" && c.DataDir != "" {
		c.Federation.TLSKeyPath = filepath.Join(c.DataDir, "federation.key")
	}
	if c.ClientAPI.PublicBaseURL == "" {
		c.ClientAPI.PublicBaseURL = baseURLFor(c.ClientAPI.Listen)
	}
	c.ClientAPI.PublicBaseURL = strings.TrimRight(c.ClientAPI.PublicBaseURL, "/")
}

// baseURLFor is the http URL of a listen address; a wildcard host (":8008",
// "0.0.0.0:8008", "[::]:8008") becomes localhost, which a client can dial.
func baseURLFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "" // Validate reports client_api.listen
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// ListenIsLoopback reports whether the client API listens on loopback only,
// so that open registration is reachable from this machine alone.
func (c *Config) ListenIsLoopback() bool { return IsLoopback(c.ClientAPI.Listen) }

// IsLoopback reports whether a listen address (host:port) binds loopback
// only.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

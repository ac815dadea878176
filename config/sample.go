package config

// SampleYAML is a commented configuration file that sets every key to its
// default (somactl generate-config prints it). Tests keep it equal to
// Default and complete.
func SampleYAML() string { return sampleYAML }

const sampleYAML = `# Soma configuration.
#
# Every key below is set to its default; delete what you do not change.
# A key left empty ("key:") keeps its default. Each key can be overridden
# by an environment variable named SOMA_ and the key's path in upper snake
# case: database.postgres_dsn is SOMA_DATABASE_POSTGRES_DSN. An empty
# variable counts as unset. Durations are written like "30s", "5m", "1h30m".

# The Matrix server name: the domain of this server's user and room IDs
# (@alice:<server_name>). A host name or IP literal, with an optional :port.
# It cannot change once users and rooms exist.
server_name: localhost

# Where the node keeps its files (signing key, SQLite database).
data_dir: ./data

# The ed25519 key that signs this server's events and federation requests,
# in Synapse's format ("ed25519 <version> <base64 seed>"). Empty means
# <data_dir>/signing.key; it is generated on first start when missing.
signing_key_path: ""

client_api:
  # host:port of the Client-Server API listener. Registration and login
  # are only reachable from this machine while it stays on loopback.
  listen: 127.0.0.1:8008
  # The URL clients use to reach this server (served in .well-known).
  # Empty means http://<listen> (a wildcard host becomes localhost).
  public_base_url: ""

database:
  # "sqlite" (embedded, one node) or "postgres" (production, clusters).
  backend: sqlite
  # The SQLite database file. Empty means <data_dir>/soma.db.
  sqlite_path: ""
  # The SQLite driver: "modernc" (pure Go) or "mattn" (cgo).
  sqlite_driver: modernc
  # The PostgreSQL connection string, required when backend is "postgres",
  # e.g. "postgres://soma:secret@127.0.0.1:5432/soma?sslmode=disable".
  postgres_dsn: ""
  # The most connections the pool opens.
  max_open_conns: 20

registration:
  # Whether anyone who can reach the client API may register an account.
  # Accounts can always be created with "somactl create-account".
  enabled: true
  # A secret that enables Synapse's shared-secret registration API
  # (/_synapse/admin/v1/register): whoever knows it can create accounts,
  # admins included, even with registration closed. Operator tools and test
  # suites use it (register_new_matrix_user, Complement). Empty: off. At
  # least 16 characters; prefer SOMA_REGISTRATION_SHARED_SECRET to a file.
  shared_secret: ""

rooms:
  # The room version of new rooms: "10" or "11".
  default_version: "11"
  # How long a room actor may stay idle before it is stopped; it is
  # reloaded from the database on its next message.
  idle_timeout: 5m
  # How long a request waits for a room actor's answer.
  request_timeout: 30s
  # How many commands may wait for one room; past it clients are told to
  # retry later (M_LIMIT_EXCEEDED) rather than the queue growing.
  max_queued: 1000

# Token-bucket rate limits: a bucket holds up to "burst" requests and
# refills at "rate" requests a second; a request finding it empty gets
# 429 M_LIMIT_EXCEEDED with retry_after_ms and a Retry-After header.
rate_limits:
  # Whether any limit applies. Turn off to measure the server rather than
  # the limiter under a load tool.
  enabled: true
  # Take the client address from the last X-Forwarded-For entry. Only
  # when the listener is reachable solely through one reverse proxy that
  # appends it; otherwise clients could pick their own address.
  trust_forwarded_for: false
  # Per user, on every authenticated request except /sync (a client's
  # sync loop is never limited per user). Element fires ~30 requests at
  # start-up; a fast typist sends a few a second.
  per_user:
    # Requests a second, sustained.
    rate: 20
    # Requests at once, after a pause.
    burst: 200
  # Per client address (IPv6 by /64), on every request. Several users may
  # share one address (NAT), so it is looser than per_user.
  per_ip:
    # Requests a second, sustained.
    rate: 50
    # Requests at once, after a pause.
    burst: 500
  # Per client address, on POST /login and POST /register only: each
  # attempt costs a bcrypt hash, and this bounds password guessing.
  # Registering takes two requests (the user-interactive auth round trip).
  login:
    # Attempts a second, sustained (0.2: one every five seconds).
    rate: 0.2
    # Attempts at once, after a pause.
    burst: 10

log:
  # trace, debug, info, warn or error.
  level: info
  # "json" (one object a line) or "console" (coloured, for people).
  format: json

metrics:
  # host:port serving Prometheus metrics on /metrics. Keep it on loopback
  # (or a private network): the figures name rooms. "" serves none.
  listen: 127.0.0.1:9092
  # How many of the busiest active rooms are exported with a room_id
  # label; per-kind totals are always exported. Bounds the number of
  # series however many rooms are active. 0: totals only.
  max_room_series: 100
  # Go's profiler at /debug/pprof/ on this listener, for developers.
  pprof: false

# The TURN server for VoIP calls through NAT: clients fetch its URIs and
# credentials from GET /_matrix/client/v3/voip/turnServer. Without uris the
# endpoint answers {} and calls go without TURN. Give either a shared
# secret or a static username and password.
turn:
  # The TURN server's URIs, handed to clients as they are, e.g.
  # ["turn:turn.example.org:3478?transport=udp",
  #  "turn:turn.example.org:3478?transport=tcp",
  #  "turns:turn.example.org:5349?transport=tcp"].
  # SOMA_TURN_URIS takes them comma-separated.
  uris: []
  # The secret shared with the TURN server (coturn: use-auth-secret and
  # static-auth-secret). Each client gets a username
  # "<expiry unix time>:<user ID>" and its HMAC-SHA1 as the password,
  # valid for user_lifetime. Prefer SOMA_TURN_SHARED_SECRET to a file.
  shared_secret: ""
  # How long shared-secret credentials stay valid (also the ttl clients
  # are told).
  user_lifetime: 1h
  # Static credentials every client gets, for a TURN server without a
  # shared secret. Both or neither.
  username: ""
  # The password of the static credentials.
  password: ""

# The media repository: files uploaded with POST /_matrix/media/v3/upload
# and served by the download and thumbnail endpoints.
media:
  # The directory of the files and generated thumbnails, each named by its
  # SHA-256 (the same content uploaded twice is stored once). Empty means
  # <data_dir>/media.
  path: ""
  # The largest upload accepted, in bytes (52428800: 50 MiB); larger ones
  # get 413 M_TOO_LARGE. Clients read it from the media config endpoint.
  max_upload_size: 52428800

# Presence: whether users show online, unavailable (idle) or offline to
# those who share a room with them. Kept in each node's memory.
presence:
  # Off, presence updates are accepted and ignored, everyone shows offline
  # and /sync carries no presence: less work for big deployments.
  enabled: true

# The Server-Server API (federation) with other homeservers. Off by
# default: federating needs a public server_name, a TLS certificate for it
# and a reachable port, none of which a development machine has.
federation:
  # host:port of the federation TLS listener (usually 0.0.0.0:8448, or a
  # port behind a reverse proxy). Empty turns federation off, inbound and
  # outbound: remote users' profiles are then not found.
  listen: ""
  # The PEM certificate (chain) the listener serves. Empty means
  # <data_dir>/federation.crt. somactl generate-tls writes a self-signed
  # pair for development.
  tls_cert_path: ""
  # The PEM private key of the certificate. Empty means
  # <data_dir>/federation.key.
  tls_key_path: ""
  # Accept any certificate from remote servers (self-signed ones in
  # development and tests). Never in production.
  skip_tls_verify: false
  # Let outbound federation requests reach loopback and private addresses
  # (several servers on one machine in development and tests). Off, a
  # server name, X-Matrix origin or notary query resolving to one is
  # refused, so that nobody can make this server call into its own network.
  allow_private_networks: false
  # How long other servers may cache this server's signing keys (the
  # valid_until_ts of /_matrix/key/v2/server lies this far ahead).
  key_validity: 24h
  # Keys this server signed with before its current one, still published
  # (old_verify_keys) so that the events and requests they signed verify.
  # Each "ed25519:<version> <base64 public key> <expired_ts in ms>";
  # somactl old-key-entry prints the entry of the current key before you
  # replace it.
  old_verify_keys: []
  # Served as m.server in /.well-known/matrix/server on the client
  # listener, delegating federation to another host[:port] (e.g.
  # "matrix.example.org:443"). Empty serves 404 there.
  well_known_server: ""
  # Events and EDUs for a remote server are queued in the database and
  # sent in order; when a transaction fails, it is sent again after
  # retry_min, the wait doubling after each further failure. A request
  # from that server ends the wait at once.
  retry_min: 2s
  # The longest wait between two tries of a failed transaction.
  retry_max: 1h

# Push notifications: each message that notifies a user (by their push
# rules) is POSTed to the push gateway of each of their pushers, after it
# is stored, with retries. Gateways are the URLs users give (http or https,
# path /_matrix/push/v1/notify): turn this off where the server must not
# make outbound requests.
push:
  # Off, pushers can still be set and listed, but nothing is sent.
  enabled: true

debug:
  # Lets admins make a room actor panic on purpose with
  # POST /_soma/admin/v1/rooms/{roomId}/fault, to watch supervision (the
  # restart and its reason on /metrics and the admin page) and alerting.
  # Never needed in normal operation.
  fault_injection: false
`

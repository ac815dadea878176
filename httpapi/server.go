// Package httpapi serves the Matrix Client-Server API: it authenticates,
// validates, sends one command to the right actor (or reads a projection) and
// renders the reply. It never writes room state itself.
package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/e2ekeys"
	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/roomdirectory"
)

// RoomRequester delivers a command to a room's actor and returns its reply.
type RoomRequester interface {
	RequestRoom(ctx context.Context, roomID string, msg proto.Message) (proto.Message, error)
}

// ActiveRoomRequester delivers a command only to a live actor of a room,
// never activating one (actors.ErrRoomNotActive otherwise).
type ActiveRoomRequester interface {
	RequestActiveRoom(ctx context.Context, roomID string, msg proto.Message) (proto.Message, error)
}

// SyncPublisher tells the node's sync notifier that a stream advanced; the
// handlers that write account data and receipts use it.
type SyncPublisher interface {
	Publish(*messages.RoomAdvanced)
}

// SyncWaiter lets a long-polling /sync wait until one of the given rooms
// or users (invites) advances past since, or the context ends.
type SyncWaiter interface {
	// Wait returns a channel closed when something the caller cares about
	// happened after since, and a func that cancels the registration.
	Wait(userID string, roomIDs []string, since persistence.StreamPos) (<-chan struct{}, func())
}

// Options configures a Server.
type Options struct {
	ServerName          string
	RegistrationEnabled bool
	// PublicBaseURL is advertised in /.well-known/matrix/client.
	PublicBaseURL string
	// RequestTimeout bounds how long a handler waits for an actor.
	RequestTimeout time.Duration
	// Metrics counts requests by route for Prometheus; nil counts nothing.
	Metrics *HTTPMetrics
	// DefaultRoomVersion is used by /createRoom without room_version.
	DefaultRoomVersion string
	// RateLimits throttles clients; the zero value limits nothing.
	RateLimits RateLimits
	// RegistrationSharedSecret, when set, enables shared-secret registration
	// (/_synapse/admin/v1/register); "" leaves it off.
	RegistrationSharedSecret string
	// TURN is what GET /voip/turnServer hands out; the zero value serves {}.
	TURN TURNOptions
	// ReadinessChecks are what GET /ready requires besides the database.
	ReadinessChecks []ReadinessCheck
	// ReadyTimeout bounds a round of readiness checks; default 2s.
	ReadyTimeout time.Duration
	// RoomStats feeds the admin API's live room figures; nil lists none.
	RoomStats RoomStatsSource
	// RoomInspector lets the admin API ask live room actors about
	// themselves; nil asks none.
	RoomInspector ActiveRoomRequester
	// FaultInjection enables POST /_soma/admin/v1/rooms/{roomId}/fault.
	FaultInjection bool
	// Publisher wakes syncs after account data and receipt writes; nil
	// wakes none (syncs then see them at their timeout).
	Publisher SyncPublisher
	// Typing is the node's typing state; nil accepts typing notifications
	// and shows none.
	Typing TypingTracker
	// Presence is the node's presence state; nil is presence disabled:
	// PUTs are accepted and ignored, everyone shows offline, /sync shows
	// none.
	Presence PresenceTracker
	// Media is the media repository; without Files it is not served.
	Media MediaOptions
	// RemoteProfiles asks other servers for their users' profiles; nil
	// (federation off) finds none.
	RemoteProfiles RemoteProfiles
	// RemoteMedia downloads other servers' media, cached in Media; nil
	// (federation off) serves only what is cached.
	RemoteMedia RemoteMedia
	// RemoteMemberships changes memberships across servers; nil
	// (federation off) changes them only in rooms this server is in.
	RemoteMemberships RemoteMemberships
	// RemoteKeys asks other servers for their users' end-to-end keys;
	// nil (federation off) lists their servers as failures.
	RemoteKeys RemoteKeys
	// RemoteDirectory asks other servers about their aliases and public
	// rooms; nil (federation off) finds none.
	RemoteDirectory RemoteDirectory
	// RemoteHistory fetches the history of rooms joined over federation
	// from before this server joined; nil (federation off) shows only
	// what is stored.
	RemoteHistory RemoteHistory
	// EDUs sends local users' typing, receipts, device list and
	// cross-signing changes and to-device messages to other servers; nil
	// (federation off) sends none.
	EDUs FederationEDUs
	// WellKnownServer is served as m.server in /.well-known/matrix/server;
	// "" answers 404 there.
	WellKnownServer string
}

// RemoteProfiles is what the profile endpoints need of federation
// (*federation.Client): a remote user's profile from their server, with
// federation.ErrRemoteNotFound for a user it does not know.
type RemoteProfiles interface {
	LookupProfile(ctx context.Context, server spec.ServerName, userID, field string) (federation.Profile, error)
}

// RemoteMedia is what the media downloads need of federation
// (*federation.Client): one of a remote server's media items, with
// federation.ErrRemoteNotFound for one it does not have.
type RemoteMedia interface {
	DownloadMedia(ctx context.Context, server spec.ServerName, mediaID string) (*federation.RemoteMedia, error)
}

// RemoteKeys is what /keys/query and /keys/claim need of federation
// (*federation.Client): one server's users' keys, only those asked for.
type RemoteKeys interface {
	QueryKeys(ctx context.Context, server spec.ServerName, deviceKeys map[string][]string) (*federation.QueriedKeys, error)
	ClaimKeys(ctx context.Context, server spec.ServerName, oneTimeKeys map[string]map[string]string) (e2ekeys.Claimed, error)
}

// RemoteDirectory is what the room directory endpoints need of federation
// (*federation.Client), with federation.ErrRemoteNotFound for an alias or
// list the server does not have.
type RemoteDirectory interface {
	LookupRoomAlias(ctx context.Context, server spec.ServerName, alias string) (roomID string, servers []string, err error)
	PublicRooms(ctx context.Context, server spec.ServerName, req roomdirectory.Request) (*roomdirectory.Response, error)
}

// Server holds what the handlers depend on.
type Server struct {
	opts   Options
	store  persistence.Store
	rooms  RoomRequester
	syncer SyncWaiter
	log    zerolog.Logger
	tokens *tokenCache
	limits *rateLimits // nil when rate limits are off
	nonces *nonceStore // nil when shared-secret registration is off
	uia    *uiaSessions
	openID *openIDTokens
	ready  *readiness
	media  *mediaState

	// toDeviceTxns are the to-device transactions done lately.
	toDeviceTxns txnSet
	// pushCache holds users' compiled push rules.
	pushCache pushRuleCache
	// unread holds how far each user's unread counts have been evaluated.
	unread unreadCache
	// upgrading holds the rooms this node is upgrading (see upgrade.go).
	upgrading sync.Map
	// joined holds rooms' joined members for presence.
	joined joinedCache
	// profiles holds local profiles for presence events.
	profiles profileCache
}

// NewServer wires a Server; Handler returns its routes.
func NewServer(opts Options, store persistence.Store, rooms RoomRequester, syncer SyncWaiter, log zerolog.Logger) *Server {
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.DefaultRoomVersion == "" {
		opts.DefaultRoomVersion = "11"
	}
	s := &Server{
		opts: opts, store: store, rooms: rooms, syncer: syncer, log: log,
		tokens: newTokenCache(),
		limits: newRateLimits(opts.RateLimits, time.Now),
		uia:    newUIASessions(time.Now),
		openID: newOpenIDTokens(time.Now),
		media:  newMediaState(),
	}
	if opts.RegistrationSharedSecret != "" {
		s.nonces = newNonceStore(time.Now)
	}
	s.ready = newReadiness(s.databaseCheck(), opts.ReadinessChecks, opts.ReadyTimeout, log)
	return s
}

// Handler returns the HTTP handler with every route of the client API, and
// the /health and /ready probes in front of it.
func (s *Server) Handler() http.Handler {
	return s.withProbes(s.router())
}

// router holds every route; tests walk it.
func (s *Server) router() *chi.Mux {
	r := chi.NewRouter()
	// rateLimit runs after cors so that a browser client can read its 429.
	// measure sits outside recoverer, cors and rateLimit so that it counts
	// the 500s, preflights and 429s they answer.
	r.Use(s.requestContext, s.measure(r), s.recoverer, s.cors, s.rateLimit)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, matrixError(http.StatusNotFound, "M_UNRECOGNIZED", "Unrecognized request"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, matrixError(http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "Unrecognized request"))
	})

	r.Get("/.well-known/matrix/client", s.serve(s.wellKnownClient))
	r.Get("/.well-known/matrix/server", s.serve(s.wellKnownServer))
	s.sharedSecretRoutes(r)
	s.adminRoutes(r)
	s.adminPageRoutes(r)
	s.mediaRoutes(r)
	s.roomV1Routes(r)
	r.Route("/_matrix/client", func(r chi.Router) {
		r.Get("/versions", s.serve(s.versions))
		r.Route("/v3", func(r chi.Router) {
			s.accountRoutes(r)
			s.roomRoutes(r)
			s.syncRoutes(r)
			s.pushRoutes(r)
			s.accountDataRoutes(r)
			s.receiptRoutes(r)
			s.typingRoutes(r)
			s.presenceRoutes(r)
			s.keysRoutes(r)
		})
		// r0 is what older clients still call; the shapes are the same.
		r.Route("/r0", func(r chi.Router) {
			s.accountRoutes(r)
			s.roomRoutes(r)
			s.syncRoutes(r)
			s.pushRoutes(r)
			s.accountDataRoutes(r)
			s.receiptRoutes(r)
			s.typingRoutes(r)
			s.presenceRoutes(r)
			s.keysRoutes(r)
		})
	})
	return r
}

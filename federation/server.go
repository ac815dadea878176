package federation

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/mediafiles"
	"github.com/soma-chat/soma/roomdirectory"
)

// ProfileReader is what the profile query needs of accounts.
type ProfileReader interface {
	// GetProfile returns persistence.ErrNotFound for an unknown localpart.
	GetProfile(ctx context.Context, localpart string) (persistence.Profile, error)
}

// ServerOptions configures the inbound Server-Server API.
type ServerOptions struct {
	Self     *Identity
	KeyRing  *KeyRing
	Profiles ProfileReader
	// Rooms delivers commands to room actors; RoomEvents reads rooms'
	// stored events. Without them the room endpoints (joins, transactions,
	// and those reading a room's events for other servers: /event,
	// /state, /backfill, ...) are not served.
	Rooms      actors.RoomRouter
	RoomEvents RoomEventReader
	// Accounts says which local users exist (the invitees of invites).
	Accounts AccountChecker
	// Missing fetches the events a remote event refers to that this
	// server lacks (nil: none are fetched).
	Missing *MissingEvents
	// Heard, when set, is told of each server whose signed request was
	// verified: a server that talks is up (its sender stops backing off).
	Heard func(origin spec.ServerName)
	// UserKeys answers the device and key queries.
	UserKeys UserKeyStore
	// Directory answers alias and public room queries.
	Directory roomdirectory.Store
	// EDUs apply the EDUs of inbound transactions (edus.go); its nil
	// fields drop the EDUs that need them.
	EDUs EDUReceivers
	// Media and MediaFiles serve this server's media to others; without
	// them the media download is not served.
	Media      MediaReader
	MediaFiles *mediafiles.Store
	// Version is what GET /_matrix/federation/v1/version reports.
	Version string
	Log     zerolog.Logger
}

// Server serves the Server-Server API on the federation listener: the
// key endpoints (unauthenticated, as the spec has them) and the federation
// endpoints behind the X-Matrix middleware.
type Server struct {
	self       *Identity
	keys       *KeyRing
	profiles   ProfileReader
	userKeys   UserKeyStore
	directory  roomdirectory.Store
	rooms      actors.RoomRouter
	roomEvents RoomEventReader
	accounts   AccountChecker
	missing    *MissingEvents
	txns       *txnResults
	heard      func(origin spec.ServerName)
	edus       EDUReceivers
	// toDeviceIDs are the to-device message IDs delivered lately.
	toDeviceIDs *messageIDs
	media       MediaReader
	mediaFiles  *mediafiles.Store
	version     string
	log         zerolog.Logger
	now         func() time.Time
}

// NewServer wires the inbound API; Handler returns its routes.
func NewServer(opts ServerOptions) *Server {
	if opts.Version == "" {
		opts.Version = "dev"
	}
	s := &Server{
		self: opts.Self, keys: opts.KeyRing, profiles: opts.Profiles, userKeys: opts.UserKeys, directory: opts.Directory,
		rooms: opts.Rooms, roomEvents: opts.RoomEvents, accounts: opts.Accounts, missing: opts.Missing, txns: newTxnResults(), heard: opts.Heard,
		edus: opts.EDUs, toDeviceIDs: &messageIDs{}, media: opts.Media, mediaFiles: opts.MediaFiles,
		version: opts.Version, log: opts.Log, now: time.Now,
	}
	s.edus.aclAllows = func(ctx context.Context, roomID string, nid persistence.RoomNID, version string, origin spec.ServerName) (bool, error) {
		v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
		if err != nil {
			return false, err
		}
		return s.aclAllows(ctx, &roomView{id: roomID, nid: nid, version: v}, origin)
	}
	return s
}

// Handler returns the federation listener's routes.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.logging, s.recoverer)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "M_UNRECOGNIZED", "Unrecognized request")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "Unrecognized request")
	})
	r.Route("/_matrix/key/v2", func(r chi.Router) {
		r.Get("/server", s.getServerKeys)
		r.Post("/query", s.postKeyQuery)
		r.Get("/query/{serverName}", s.getKeyQuery)
	})
	r.Route("/_matrix/federation/v1", func(r chi.Router) {
		r.Get("/version", s.getVersion)
		r.Group(func(r chi.Router) {
			r.Use(s.requireXMatrix)
			r.Get("/query/profile", s.queryProfile)
			if s.rooms != nil && s.roomEvents != nil {
				r.Get("/make_join/{roomId}/{userId}", s.makeJoin)
				r.Get("/make_leave/{roomId}/{userId}", s.makeLeave)
				r.Put("/send/{txnId}", s.send)
			}
			if s.media != nil && s.mediaFiles != nil {
				r.Get("/media/download/{mediaId}", s.getMediaDownload)
			}
			if s.userKeys != nil {
				r.Get("/user/devices/{userId}", s.getUserDevices)
				r.Post("/user/keys/query", s.queryUserKeys)
				r.Post("/user/keys/claim", s.claimUserKeys)
			}
			if s.directory != nil {
				r.Get("/query/directory", s.queryDirectory)
				r.Get("/publicRooms", s.publicRooms)
				r.Post("/publicRooms", s.publicRooms)
			}
			if s.roomEvents != nil {
				r.Get("/event/{eventId}", s.getEvent)
				r.Get("/state/{roomId}", s.getState)
				r.Get("/state_ids/{roomId}", s.getStateIDs)
				r.Get("/event_auth/{roomId}/{eventId}", s.getEventAuth)
				r.Get("/backfill/{roomId}", s.getBackfill)
				r.Post("/get_missing_events/{roomId}", s.postGetMissingEvents)
				r.Get("/timestamp_to_event/{roomId}", s.getTimestampToEvent)
			}
		})
	})
	if s.rooms != nil && s.roomEvents != nil {
		r.Route("/_matrix/federation/v2", func(r chi.Router) {
			r.Use(s.requireXMatrix)
			r.Put("/send_join/{roomId}/{eventId}", s.sendJoin)
			r.Put("/send_leave/{roomId}/{eventId}", s.sendLeave)
			r.Put("/invite/{roomId}/{eventId}", s.invite)
		})
	}
	return r
}

// logging gives each request a logger (zerolog.Ctx) and logs it once done.
func (s *Server) logging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		log := s.log.With().Str("listener", "federation").Str("method", r.Method).Str("path", r.URL.Path).Logger()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(log.WithContext(r.Context())))
		log.Debug().Int("status", sw.status).Dur("duration", time.Since(start)).Msg("federation request")
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// recoverer turns a handler's panic into a 500 Matrix error.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				zerolog.Ctx(r.Context()).Error().Interface("panic", p).Msg("federation handler panicked")
				writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// GET /_matrix/federation/v1/version
func (s *Server) getVersion(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"server": map[string]string{"name": "Soma", "version": s.version}})
}

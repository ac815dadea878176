package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"
)

// requestContext gives every request an ID and a logger carrying it, and
// logs an access line when the request is done.
func (s *Server) requestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		l := s.log.With().Str("request_id", id).Logger()
		ctx := l.WithContext(r.Context())
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(ctx))
		logAccess(ctx, r, ww.Status(), ww.BytesWritten(), time.Since(start))
	})
}

// logAccess logs one line per request: at debug level, or warn for a 5xx.
// It names the route pattern, never the path, whose query may carry an
// access token. The fields handlers added (user, room, event) come along.
func logAccess(ctx context.Context, r *http.Request, status, bytes int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing
	}
	l := zerolog.Ctx(ctx)
	ev := l.Debug()
	if status >= http.StatusInternalServerError {
		ev = l.Warn()
	}
	if ev == nil {
		return // level disabled: nothing is computed
	}
	route := ""
	if rc := chi.RouteContext(r.Context()); rc != nil {
		route = rc.RoutePattern()
	}
	ev.Str("method", r.Method).Str("route", route).Int("status", status).
		Float64("duration_ms", float64(d.Microseconds())/1000).Int("bytes", bytes).Msg("request")
}

// logFields adds fields to the request's logger: every later line of the
// request, its access line included, carries them. Only the goroutine
// serving the request may call it.
func logFields(ctx context.Context, add func(zerolog.Context) zerolog.Context) {
	zerolog.Ctx(ctx).UpdateContext(add)
}

// logCaller adds the authenticated user and, from the path, the room and
// event the request is about.
func logCaller(r *http.Request, userID string) {
	room := pathParam(r, "roomId")
	if v := pathParam(r, "roomIdOrAlias"); room == "" && strings.HasPrefix(v, "!") {
		room = v
	}
	event := pathParam(r, "eventId")
	logFields(r.Context(), func(c zerolog.Context) zerolog.Context {
		c = c.Str("user_id", userID)
		if room != "" {
			c = c.Str("room_id", room)
		}
		if event != "" {
			c = c.Str("event_id", event)
		}
		return c
	})
}

// recoverer turns a panicking handler into M_UNKNOWN instead of a dropped
// connection, and logs it loudly: a panic is always a bug.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				zerolog.Ctx(r.Context()).Error().Interface("panic", p).Str("path", r.URL.Path).Msg("handler panicked")
				writeError(w, errUnknown("internal server error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// cors allows browser clients (Element web) from any origin, as the spec asks.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		if r.Method == http.MethodOptions {
			// A preflight, for any path: answered here, before routing,
			// which would otherwise 405 it on the sub-routers.
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// logEventID adds the event a request created to its logger.
func logEventID(ctx context.Context, eventID string) {
	logFields(ctx, func(c zerolog.Context) zerolog.Context { return c.Str("event_id", eventID) })
}

// logRoomID adds the room a request created to its logger.
func logRoomID(ctx context.Context, roomID string) {
	logFields(ctx, func(c zerolog.Context) zerolog.Context { return c.Str("room_id", roomID) })
}

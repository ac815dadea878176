package httpapi

import (
	"errors"
	"net/http"

	"github.com/rs/zerolog"
)

// handlerFunc is a client API handler: it returns the response body or a
// Matrix error, so that every failure path renders the same way.
type handlerFunc func(r *http.Request) (status int, body any, err error)

// serve adapts a handlerFunc to http.Handler, mapping errors in one place.
// Any error that is not a *MatrixError is logged and reported as M_UNKNOWN
// (500): bad input must never reach that branch.
func (s *Server) serve(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(r)
		if err != nil {
			var me *MatrixError
			if !errors.As(err, &me) && r.Context().Err() != nil {
				// The client hung up (or the server is stopping): not a bug.
				zerolog.Ctx(r.Context()).Debug().Err(err).Str("path", r.URL.Path).Msg("request abandoned")
				me = matrixError(http.StatusServiceUnavailable, "M_UNKNOWN", "request abandoned")
			} else if !errors.As(err, &me) {
				zerolog.Ctx(r.Context()).Error().Err(err).Str("path", r.URL.Path).Msg("internal error")
				me = errUnknown("internal server error")
			}
			writeError(w, me)
			return
		}
		writeJSON(w, status, body)
	}
}

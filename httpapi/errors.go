package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// MatrixError is the body of every error the client API returns.
type MatrixError struct {
	Status       int    `json:"-"`
	ErrCode      string `json:"errcode"`
	Err          string `json:"error"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func (e *MatrixError) Error() string { return e.ErrCode + ": " + e.Err }

func matrixError(status int, code, msg string) *MatrixError {
	return &MatrixError{Status: status, ErrCode: code, Err: msg}
}

// Constructors for the errors handlers return most often.
func errForbidden(msg string) *MatrixError {
	return matrixError(http.StatusForbidden, "M_FORBIDDEN", msg)
}
func errNotFound(msg string) *MatrixError {
	return matrixError(http.StatusNotFound, "M_NOT_FOUND", msg)
}
func errBadJSON(msg string) *MatrixError {
	return matrixError(http.StatusBadRequest, "M_BAD_JSON", msg)
}
func errNotJSON(msg string) *MatrixError {
	return matrixError(http.StatusBadRequest, "M_NOT_JSON", msg)
}
func errMissingParam(msg string) *MatrixError {
	return matrixError(http.StatusBadRequest, "M_MISSING_PARAM", msg)
}
func errInvalidParam(msg string) *MatrixError {
	return matrixError(http.StatusBadRequest, "M_INVALID_PARAM", msg)
}
func errUnknown(msg string) *MatrixError {
	return matrixError(http.StatusInternalServerError, "M_UNKNOWN", msg)
}

// writeJSON renders a 2xx (or any) JSON response.
func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errcode":"M_UNKNOWN","error":"response encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError renders a Matrix error; one that asks the client to wait also
// carries the Retry-After header (in seconds, rounded up).
func writeError(w http.ResponseWriter, e *MatrixError) {
	if e.RetryAfterMS > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(e.RetryAfterMS))
	}
	writeJSON(w, e.Status, e)
}

// retryAfterSeconds is the Retry-After header for a wait, rounded up.
func retryAfterSeconds(ms int64) string {
	return strconv.FormatInt((ms+999)/1000, 10)
}

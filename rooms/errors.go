package rooms

import (
	"fmt"
	"net/http"

	"github.com/soma-chat/soma/actors/messages"
)

// Error is a refusal the client sees as a Matrix error.
type Error struct {
	Status  int
	ErrCode string
	Message string
	// Moved marks the refusal of a fenced-off activation (see
	// messages.Error.moved).
	Moved bool
}

func (e *Error) Error() string { return e.ErrCode + ": " + e.Message }

// Proto converts the error for a reply message.
func (e *Error) Proto() *messages.Error {
	return &messages.Error{Errcode: e.ErrCode, Message: e.Message, HttpStatus: int32(e.Status), Moved: e.Moved}
}

func forbidden(format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, ErrCode: "M_FORBIDDEN", Message: fmt.Sprintf(format, args...)}
}

func badJSON(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, ErrCode: "M_BAD_JSON", Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, ErrCode: "M_NOT_FOUND", Message: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, ErrCode: "M_TOO_LARGE", Message: fmt.Sprintf(format, args...)}
}

// unavailable is a transient failure (storage down, activation lost): the
// client may retry the same request.
func unavailable(format string, args ...any) *Error {
	return &Error{Status: http.StatusServiceUnavailable, ErrCode: "M_UNKNOWN", Message: fmt.Sprintf(format, args...)}
}

// internal is a bug surfaced to the client without details.
func internal(format string, args ...any) *Error {
	return &Error{Status: http.StatusInternalServerError, ErrCode: "M_UNKNOWN", Message: fmt.Sprintf(format, args...)}
}

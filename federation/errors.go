package federation

import (
	"encoding/json"
	"net/http"
)

// matrixError is the body of every error the federation listener answers.
type matrixError struct {
	ErrCode string `json:"errcode"`
	Err     string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, matrixError{ErrCode: code, Err: msg})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"errcode":"M_UNKNOWN","error":"Internal error"}`)
	}
	writeRawJSON(w, status, data)
}

// writeRawJSON writes JSON that must reach the client byte for byte
// (signed key responses).
func writeRawJSON(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

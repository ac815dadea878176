package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
)

// maxBodyBytes bounds client request bodies; an event is limited further
// (65536 bytes as a PDU) by the room.
const maxBodyBytes = 1 << 20

// readJSONObject reads the body and checks it is one JSON object: the bytes
// are returned for handlers that keep content verbatim.
func readJSONObject(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, errNotJSON("could not read request body")
	}
	if len(body) > maxBodyBytes {
		return nil, matrixError(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "request body too large")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return []byte("{}"), nil
	}
	if !json.Valid(trimmed) {
		return nil, errNotJSON("request body is not valid JSON")
	}
	if trimmed[0] != '{' {
		return nil, errBadJSON("request body must be a JSON object")
	}
	return trimmed, nil
}

// decodeJSON reads a JSON object body into v. An empty body decodes as {}.
func decodeJSON(r *http.Request, v any) error {
	body, err := readJSONObject(r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errBadJSON("field " + te.Field + " has the wrong type")
		}
		return errBadJSON(err.Error())
	}
	return nil
}

// urlParam returns a path parameter decoded. chi matches on the escaped path
// (RawPath) whenever the client escaped more than Go would, as clients do
// for the '@', ':' and '!' of Matrix IDs; its parameters are then still
// escaped. When RawPath is empty the path was already decoded.
func urlParam(r *http.Request, name string) (string, error) {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v, nil
	}
	u, err := url.PathUnescape(v)
	if err != nil {
		return "", errInvalidParam("malformed path parameter " + name)
	}
	return u, nil
}

// pathParam is urlParam for handlers that validate the value anyway: a
// malformed escape reads as empty, which their validation refuses.
func pathParam(r *http.Request, name string) string {
	v, err := urlParam(r, name)
	if err != nil {
		return ""
	}
	return v
}

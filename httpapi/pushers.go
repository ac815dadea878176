package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/soma-chat/soma/persistence"
)

// Pushers: GET /pushers and POST /pushers/set. A pusher is stored per user
// and (app_id, pushkey), tied to the device whose token set it: deleting
// or logging out the device deletes its pushers (in the same transaction,
// see persistence.PusherStore). Delivery is actors.Pusher's, planned by
// pushplan.go.

// Limits the spec gives for a pusher's identity.
const (
	maxAppIDChars    = 64
	maxPushkeyBytes  = 512
	pushGatewayPath  = "/_matrix/push/v1/notify"
	pusherKindHTTP   = "http"
	pusherKindEmail  = "email"
	pusherFormatOnly = "event_id_only"
)

// pushRoutes are the push notification endpoints beside the push rules.
func (s *Server) pushRoutes(r chi.Router) {
	r.Get("/notifications", s.serve(s.authed(s.notificationsHandler)))
	r.Get("/pushers", s.serve(s.authed(s.getPushersHandler)))
	r.Post("/pushers/set", s.serve(s.authed(s.setPusherHandler)))
}

// pusherJSON is a pusher as GET /pushers shows it.
type pusherJSON struct {
	Pushkey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

func (s *Server) getPushersHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	ps, err := s.store.PushersOfUser(r.Context(), c.UserID)
	if err != nil {
		return 0, nil, err
	}
	out := make([]pusherJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, pusherJSON{
			Pushkey: p.Pushkey, Kind: p.Kind, AppID: p.AppID, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: p.Data,
		})
	}
	return http.StatusOK, map[string]any{"pushers": out}, nil
}

func (s *Server) setPusherHandler(r *http.Request) (int, any, error) {
	ctx := r.Context()
	c := callerFrom(ctx)
	var body map[string]json.RawMessage
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	f := &pusherFields{m: body}
	if err := f.require("kind", "app_id", "pushkey"); err != nil {
		return 0, nil, err
	}
	appID, pushkey := f.str("app_id"), f.str("pushkey")
	kindNull := string(body["kind"]) == "null"
	kind := ""
	if !kindNull {
		kind = f.str("kind")
	}
	if f.err != nil {
		return 0, nil, f.err
	}
	switch {
	case appID == "" || utf8.RuneCountInString(appID) > maxAppIDChars:
		return 0, nil, errInvalidParam("app_id must be 1 to 64 characters")
	case pushkey == "" || len(pushkey) > maxPushkeyBytes:
		return 0, nil, errInvalidParam("pushkey must be 1 to 512 bytes")
	}
	if kindNull {
		if err := s.store.DeletePusher(ctx, c.UserID, appID, pushkey); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, struct{}{}, nil
	}
	if err := f.require("app_display_name", "device_display_name", "lang", "data"); err != nil {
		return 0, nil, err
	}
	p := persistence.Pusher{
		UserID: c.UserID, Localpart: c.Localpart, DeviceID: c.DeviceID, Kind: kind, AppID: appID, Pushkey: pushkey,
		AppDisplayName: f.str("app_display_name"), DeviceDisplayName: f.str("device_display_name"),
		ProfileTag: f.optStr("profile_tag"), Lang: f.str("lang"), PushkeyTS: time.Now().UnixMilli(),
	}
	appendToOthers := f.optBool("append")
	var data map[string]json.RawMessage
	if err := json.Unmarshal(body["data"], &data); err != nil || data == nil {
		return 0, nil, errBadJSON("data must be an object")
	}
	if f.err != nil {
		return 0, nil, f.err
	}
	switch kind {
	case pusherKindHTTP:
		if err := checkHTTPPusherData(data); err != nil {
			return 0, nil, err
		}
	case pusherKindEmail:
		return 0, nil, errInvalidParam("email pushers need an email address bound to the account; this server binds none")
	default:
		return 0, nil, errInvalidParam("unknown pusher kind " + kind + ": only http is supported")
	}
	p.Data = body["data"]
	err := s.store.SetPusher(ctx, p, appendToOthers)
	if errors.Is(err, persistence.ErrNotFound) {
		// The device was deleted while this request ran: so was its token.
		return 0, nil, matrixError(http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "Unknown access token")
	}
	if err != nil {
		return 0, nil, err
	}
	s.log.Info().Str("user_id", c.UserID).Str("device_id", c.DeviceID).Str("app_id", appID).Msg("pusher set")
	return http.StatusOK, struct{}{}, nil
}

// checkHTTPPusherData checks an http pusher's data: a url that is an
// absolute http(s) URL with the push gateway path (the spec asks for
// HTTPS; plain HTTP is allowed for gateways on a private network), and a
// format that is a string when present.
func checkHTTPPusherData(data map[string]json.RawMessage) error {
	raw, ok := data["url"]
	if !ok {
		return errMissingParam("data.url is required for an http pusher")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return errBadJSON("data.url must be a string")
	}
	if _, err := pushGatewayURL(s); err != nil {
		return errInvalidParam("data.url " + err.Error())
	}
	if raw, ok := data["format"]; ok {
		var f string
		if err := json.Unmarshal(raw, &f); err != nil {
			return errBadJSON("data.format must be a string")
		}
	}
	return nil
}

// pushGatewayURL parses a pusher's URL: http or https, a host, and the
// notify path. Delivery checks it again before every request.
func pushGatewayURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("must be an http or https URL")
	case u.Host == "" || u.User != nil:
		return nil, errors.New("must name a host (and no credentials)")
	case u.Path != pushGatewayPath:
		return nil, errors.New("must have the path " + pushGatewayPath)
	}
	return u, nil
}

// pusherFields reads the fields of a pusher body, remembering the first
// type error (M_BAD_JSON) in err.
type pusherFields struct {
	m   map[string]json.RawMessage
	err error
}

// require fails with M_MISSING_PARAM naming every absent key.
func (f *pusherFields) require(keys ...string) error {
	var missing []string
	for _, k := range keys {
		if _, ok := f.m[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return errMissingParam("missing parameters: " + strings.Join(missing, ", "))
	}
	return nil
}

func (f *pusherFields) str(key string) string {
	var s *string
	if err := json.Unmarshal(f.m[key], &s); err != nil || s == nil {
		f.fail(key)
		return ""
	}
	return *s
}

func (f *pusherFields) optStr(key string) string {
	if raw, ok := f.m[key]; !ok || string(raw) == "null" {
		return ""
	}
	return f.str(key)
}

func (f *pusherFields) optBool(key string) bool {
	var b bool
	if raw, ok := f.m[key]; ok && string(raw) != "null" && json.Unmarshal(raw, &b) != nil {
		f.fail(key)
	}
	return b
}

func (f *pusherFields) fail(key string) {
	if f.err == nil {
		f.err = errBadJSON(key + " has the wrong type")
	}
}

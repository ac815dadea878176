package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/e2ekeys"
	"github.com/soma-chat/soma/roomdirectory"
)

// Outbound queries about another server's users and directory: keys,
// one-time key claims, aliases, public rooms. Key objects are kept as the
// remote server sent them (json.RawMessage): fclient's typed responses
// drop fields they do not know, and with them the signatures' validity.
// What a server answers about users or devices that were not asked of it
// is dropped: a server speaks only for its own users.

// QueriedKeys are the keys one server gave for its users (the body of
// POST /_matrix/federation/v1/user/keys/query).
type QueriedKeys struct {
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys,omitempty"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys,omitempty"`
}

// do sends a signed request to a server and decodes its JSON answer into
// out; a 404 is ErrRemoteNotFound.
func (c *Client) do(ctx context.Context, op, method string, server spec.ServerName, path string, body, out any) error {
	if server == c.self.ServerName {
		return fmt.Errorf("%s: %s is this server", op, server)
	}
	req := fclient.NewFederationRequest(method, c.self.ServerName, server, path)
	if body != nil {
		if err := req.SetContent(body); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := req.Sign(c.self.ServerName, c.self.Key.KeyID, c.self.Key.Private); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	httpReq, err := req.HTTPRequest()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := c.fed.DoRequestAndParseResponse(ctx, httpReq, out); err != nil {
		return remoteError(op, err)
	}
	return nil
}

// QueryKeys asks a server for its users' device and cross-signing keys
// (an empty device list is every device of the user).
func (c *Client) QueryKeys(ctx context.Context, server spec.ServerName, deviceKeys map[string][]string) (*QueriedKeys, error) {
	asked := make(map[string][]string, len(deviceKeys))
	for userID, devices := range deviceKeys {
		if devices == nil {
			devices = []string{} // null is not a list
		}
		asked[userID] = devices
	}
	var res QueriedKeys
	if err := c.do(ctx, "federation.QueryKeys", "POST", server, "/_matrix/federation/v1/user/keys/query",
		map[string]any{"device_keys": asked}, &res); err != nil {
		return nil, err
	}
	out := &QueriedKeys{
		DeviceKeys:      map[string]map[string]json.RawMessage{},
		MasterKeys:      map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
	}
	for userID, devices := range res.DeviceKeys {
		wanted, ok := asked[userID]
		if !ok {
			continue
		}
		kept := map[string]json.RawMessage{}
		for deviceID, keys := range devices {
			if (len(wanted) == 0 || slices.Contains(wanted, deviceID)) && keysOf(keys, userID, deviceID) {
				kept[deviceID] = keys
			}
		}
		out.DeviceKeys[userID] = kept
	}
	for userID, k := range res.MasterKeys {
		if _, ok := asked[userID]; ok && keysOf(k, userID, "") {
			out.MasterKeys[userID] = k
		}
	}
	for userID, k := range res.SelfSigningKeys {
		if _, ok := asked[userID]; ok && keysOf(k, userID, "") {
			out.SelfSigningKeys[userID] = k
		}
	}
	return out, nil
}

// keysOf reports whether a key object says it is the user's (and the
// device's, when deviceID is not "").
func keysOf(raw json.RawMessage, userID, deviceID string) bool {
	var k struct {
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
	}
	return json.Unmarshal(raw, &k) == nil && k.UserID == userID && (deviceID == "" || k.DeviceID == deviceID)
}

// ClaimKeys claims one-time (or fallback) keys of a server's users' devices.
func (c *Client) ClaimKeys(ctx context.Context, server spec.ServerName, oneTimeKeys map[string]map[string]string) (e2ekeys.Claimed, error) {
	var res struct {
		OneTimeKeys e2ekeys.Claimed `json:"one_time_keys"`
	}
	if err := c.do(ctx, "federation.ClaimKeys", "POST", server, "/_matrix/federation/v1/user/keys/claim",
		map[string]any{"one_time_keys": oneTimeKeys}, &res); err != nil {
		return nil, err
	}
	out := e2ekeys.Claimed{}
	for userID, devices := range res.OneTimeKeys {
		for deviceID, keys := range devices {
			if _, ok := oneTimeKeys[userID][deviceID]; !ok {
				continue
			}
			if out[userID] == nil {
				out[userID] = map[string]map[string]json.RawMessage{}
			}
			out[userID][deviceID] = keys
		}
	}
	return out, nil
}

// LookupRoomAlias asks the alias's server which room it names and which
// servers can help join it.
func (c *Client) LookupRoomAlias(ctx context.Context, server spec.ServerName, alias string) (string, []string, error) {
	var res struct {
		RoomID  string   `json:"room_id"`
		Servers []string `json:"servers"`
	}
	if err := c.do(ctx, "federation.LookupRoomAlias", "GET", server,
		"/_matrix/federation/v1/query/directory?room_alias="+url.QueryEscape(alias), nil, &res); err != nil {
		return "", nil, err
	}
	if _, err := spec.NewRoomID(res.RoomID); err != nil {
		return "", nil, fmt.Errorf("federation.LookupRoomAlias: %s answered a bad room ID: %w", server, err)
	}
	if res.Servers == nil {
		res.Servers = []string{}
	}
	return res.RoomID, res.Servers, nil
}

// PublicRooms asks a server for a page of its public room list (POST,
// which carries the filter; every field is optional).
func (c *Client) PublicRooms(ctx context.Context, server spec.ServerName, req roomdirectory.Request) (*roomdirectory.Response, error) {
	var res roomdirectory.Response
	if err := c.do(ctx, "federation.PublicRooms", "POST", server, "/_matrix/federation/v1/publicRooms", req, &res); err != nil {
		return nil, err
	}
	if res.Chunk == nil {
		res.Chunk = []roomdirectory.Room{}
	}
	return &res, nil
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The Client-Server API calls the scenarios make, as the spec defines
// them (v3 paths), so that any conforming homeserver can be loaded.

// user is an account the tool acts as.
type user struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id,omitempty"`
}

const authDummy = "m.login.dummy"

// register creates an account through user-interactive authentication:
// the first POST is answered 401 with a session and the flows on offer;
// the second completes the m.login.dummy stage in that session.
func (c *client) register(ctx context.Context, username, password string) (user, error) {
	const path = "/_matrix/client/v3/register"
	req := map[string]any{
		"username":                    username,
		"password":                    password,
		"initial_device_display_name": "somaload",
	}
	r := c.call(ctx, http.MethodPost, path, "", req, 0)
	if r.Status == http.StatusUnauthorized {
		var uia struct {
			Session string `json:"session"`
			Flows   []struct {
				Stages []string `json:"stages"`
			} `json:"flows"`
		}
		if err := r.decode(&uia); err != nil {
			return user{}, fmt.Errorf("register %s: %w", username, err)
		}
		dummy := false
		for _, f := range uia.Flows {
			dummy = dummy || (len(f.Stages) == 1 && f.Stages[0] == authDummy)
		}
		if !dummy {
			return user{}, fmt.Errorf("register %s: the server offers no flow of %s alone (%s); create the accounts another way and pass -token-file", username, authDummy, r)
		}
		req["auth"] = map[string]any{"type": authDummy, "session": uia.Session}
		r = c.call(ctx, http.MethodPost, path, "", req, 0)
	}
	if !r.ok() {
		return user{}, fmt.Errorf("register %s: %s", username, r)
	}
	var u user
	if err := r.decode(&u); err != nil {
		return user{}, fmt.Errorf("register %s: %w", username, err)
	}
	if u.UserID == "" || u.AccessToken == "" {
		return user{}, fmt.Errorf("register %s: no user_id or access_token in %s", username, r)
	}
	return u, nil
}

// whoami checks that an access token is valid and belongs to u.
func (c *client) whoami(ctx context.Context, u user) error {
	r := c.call(ctx, http.MethodGet, "/_matrix/client/v3/account/whoami", u.AccessToken, nil, 0)
	if !r.ok() {
		return fmt.Errorf("checking the token of %s: %s", u.UserID, r)
	}
	var who struct {
		UserID string `json:"user_id"`
	}
	if err := r.decode(&who); err != nil {
		return err
	}
	if who.UserID != u.UserID {
		return fmt.Errorf("the token listed for %s belongs to %s", u.UserID, who.UserID)
	}
	return nil
}

// createRoom creates a public room (anyone may join) owned by u.
func (c *client) createRoom(ctx context.Context, u user, name string) (string, error) {
	r := c.call(ctx, http.MethodPost, "/_matrix/client/v3/createRoom", u.AccessToken,
		map[string]any{"preset": "public_chat", "name": name}, 0)
	if !r.ok() {
		return "", fmt.Errorf("%s creating a room: %s", u.UserID, r)
	}
	var res struct {
		RoomID string `json:"room_id"`
	}
	if err := r.decode(&res); err != nil {
		return "", err
	}
	if res.RoomID == "" {
		return "", fmt.Errorf("%s creating a room: no room_id in %s", u.UserID, r)
	}
	return res.RoomID, nil
}

// join joins u to roomID. With via (server names), it asks through
// /join/{roomIdOrAlias}?server_name=…, so that a server not yet in the room
// joins it over federation through one of them.
func (c *client) join(ctx context.Context, u user, roomID string, via ...string) result {
	if len(via) == 0 {
		return c.call(ctx, http.MethodPost, "/_matrix/client/v3/rooms/"+pathSegment(roomID)+"/join", u.AccessToken, map[string]any{}, 0)
	}
	q := url.Values{"server_name": via}
	return c.call(ctx, http.MethodPost, "/_matrix/client/v3/join/"+pathSegment(roomID)+"?"+q.Encode(), u.AccessToken, map[string]any{}, 0)
}

// serverName is the domain of a user ID (@localpart:domain, the domain
// possibly with a port): the server the user belongs to.
func serverName(userID string) (string, error) {
	_, domain, ok := strings.Cut(userID, ":")
	if !strings.HasPrefix(userID, "@") || !ok || domain == "" {
		return "", fmt.Errorf("%q is not a user ID", userID)
	}
	return domain, nil
}

func (c *client) leave(ctx context.Context, u user, roomID string) result {
	return c.call(ctx, http.MethodPost, "/_matrix/client/v3/rooms/"+pathSegment(roomID)+"/leave", u.AccessToken, map[string]any{}, 0)
}

// send sends an m.room.message; the answer carries event_id.
func (c *client) send(ctx context.Context, u user, roomID, txnID string, content map[string]any) result {
	return c.call(ctx, http.MethodPut,
		"/_matrix/client/v3/rooms/"+pathSegment(roomID)+"/send/m.room.message/"+pathSegment(txnID),
		u.AccessToken, content, 0)
}

// sync long-polls for up to timeout; the attempt may take that long plus
// the client's own -timeout for the server to answer.
func (c *client) sync(ctx context.Context, u user, since string, timeout time.Duration) result {
	return c.syncFiltered(ctx, u, since, "", timeout)
}

// syncFiltered is sync with a filter (an ID or inline JSON), when not "".
func (c *client) syncFiltered(ctx context.Context, u user, since, filter string, timeout time.Duration) result {
	path := "/_matrix/client/v3/sync?timeout=" + strconv.FormatInt(timeout.Milliseconds(), 10)
	if since != "" {
		path += "&since=" + pathSegment(since)
	}
	if filter != "" {
		path += "&filter=" + url.QueryEscape(filter)
	}
	return c.call(ctx, http.MethodGet, path, u.AccessToken, nil, timeout+c.timeout)
}

// joinedMembers counts the room's joined members as the server reports them.
func (c *client) joinedMembers(ctx context.Context, u user, roomID string) (int, error) {
	r := c.call(ctx, http.MethodGet, "/_matrix/client/v3/rooms/"+pathSegment(roomID)+"/joined_members", u.AccessToken, nil, 0)
	if !r.ok() {
		return 0, fmt.Errorf("%s", r)
	}
	var res struct {
		Joined map[string]any `json:"joined"`
	}
	if err := r.decode(&res); err != nil {
		return 0, err
	}
	return len(res.Joined), nil
}

// syncResponse is the part of /sync the tool reads.
type syncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []struct {
					EventID string         `json:"event_id"`
					Type    string         `json:"type"`
					Content map[string]any `json:"content"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

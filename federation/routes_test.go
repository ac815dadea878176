package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/mediafiles"
	"github.com/soma-chat/soma/persistence/sqlite"
	"github.com/soma-chat/soma/rooms"
)

// Every route of the federation listener, whatever a verified server
// sends it, answers without a 500, and its refusals are Matrix errors.
// The routes are walked from the router, so routes added later are swept
// too.
func TestEveryRouteRefusesBadInputWithAMatrixError(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "soma.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	selfKey, _ := GenerateSigningKey()
	originKey, _ := GenerateSigningKey()
	if err := store.StoreServerKeys(ctx, []persistence.ServerKey{{
		ServerName: "127.0.0.1:1", KeyID: string(originKey.KeyID), PublicKey: originKey.Public(),
		ValidUntilTS: time.Now().Add(time.Hour).UnixMilli(),
	}}); err != nil {
		t.Fatal(err)
	}
	self := &Identity{ServerName: "127.0.0.1:2", Key: selfKey, KeyValidity: time.Hour}
	ring := NewKeyRing(self, store, NewClient(self, ClientOptions{AllowPrivateNetworks: true}), zerolog.Nop())

	// A real room here, so that the room routes get past "unknown room".
	system := actors.NewSystem(zerolog.Nop())
	t.Cleanup(func() { system.Shutdown() })
	var router *actors.LocalRoomRouter
	deps := &rooms.Deps{
		Store:     store,
		Signer:    &rooms.Signer{ServerName: self.ServerName, KeyID: selfKey.KeyID, Key: selfKey.Private},
		Passivate: func(id string, pid *actor.PID) bool { return router.Passivate(id, pid) },
		Log:       zerolog.Nop(), Now: time.Now,
	}
	router = actors.NewLocalRoomRouter(system, func(id string) actor.Producer { return rooms.NewActor(id, deps) })
	const roomID = "!sweep:127.0.0.1:2"
	evs, err := (&rooms.CreateRequest{Preset: "public_chat"}).Compose("@alice:127.0.0.1:2", "11", rooms.CreatorProfile{})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := router.RequestRoom(ctx, roomID, &messages.CreateRoom{RoomId: roomID, RoomVersion: "11", Events: evs})
	if err != nil || reply.(*messages.CreateRoomReply).Error != nil {
		t.Fatalf("create: %v %v", err, reply)
	}

	files, err := mediafiles.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerOptions{
		Self: self, KeyRing: ring, Profiles: store, UserKeys: store, Directory: store,
		Rooms: router, RoomEvents: store, Accounts: store, Media: store, MediaFiles: files, Log: zerolog.Nop(),
	})
	handler := srv.Handler()
	params := map[string]string{
		"{roomId}": roomID, "{userId}": "@mallory:127.0.0.1:1", "{eventId}": "$nope",
		"{serverName}": "127.0.0.1:1", "{mediaId}": "nosuchmedia",
	}
	bodies := []any{
		nil,
		map[string]any{},
		[]any{1, "two"},
		map[string]any{"pdus": "x", "edus": map[string]any{}, "event": 5, "room_version": 7, "origin": []any{},
			"device_keys": "x", "one_time_keys": 3, "earliest_events": "x", "latest_events": 1, "limit": "ten",
			"filter": 1, "since": 2, "invite_room_state": "x", "server_keys": 1},
		map[string]any{"type": "m.room.member", "room_id": roomID, "sender": "@mallory:127.0.0.1:1", "content": map[string]any{}},
	}
	n := 0
	err = chi.Walk(handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		path := route
		for k, v := range params {
			path = strings.ReplaceAll(path, k, v)
		}
		for i, body := range bodies {
			n++
			uri := strings.ReplaceAll(path, "{txnId}", fmt.Sprint(n)) // each transaction new
			fr := fclient.NewFederationRequest(method, "127.0.0.1:1", self.ServerName, uri)
			if body != nil && method != http.MethodGet {
				if err := fr.SetContent(body); err != nil {
					t.Fatal(err)
				}
			}
			if err := fr.Sign("127.0.0.1:1", originKey.KeyID, originKey.Private); err != nil {
				t.Fatal(err)
			}
			hr, err := fr.HTTPRequest()
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(method, hr.URL.RequestURI(), hr.Body)
			req.Header = hr.Header
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code >= 500 && rec.Code != http.StatusBadGateway && rec.Code != http.StatusServiceUnavailable {
				t.Errorf("%s %s with body %d: %d %s", method, route, i, rec.Code, rec.Body.String())
				continue
			}
			if rec.Code >= 400 {
				var e struct {
					ErrCode string `json:"errcode"`
				}
				if json.Unmarshal(rec.Body.Bytes(), &e) != nil || !strings.HasPrefix(e.ErrCode, "M_") {
					t.Errorf("%s %s with body %d: %d without a Matrix error: %s", method, route, i, rec.Code, rec.Body.String())
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20*len(bodies) {
		t.Fatalf("swept only %d requests: the router lost its routes?", n)
	}
}

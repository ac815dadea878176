package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/soma-chat/soma/actors/messages"
	"github.com/soma-chat/soma/persistence"
)

// To-device messages: PUT /sendToDevice/{eventType}/{txnId} stores one
// message per target device (all of a user's devices for "*"), delivered
// by the device's next /sync and deleted once that sync is acknowledged.

// maxToDeviceMessages bounds the messages one request may fan out to.
const maxToDeviceMessages = 10000

type sendToDeviceRequest struct {
	Messages map[string]map[string]json.RawMessage `json:"messages"`
}

// sendToDevice: PUT /sendToDevice/{eventType}/{txnId}. A retry of the same
// transaction by the same device is answered without sending again (per
// node, for toDeviceTxnTTL).
func (s *Server) sendToDevice(r *http.Request) (int, any, error) {
	eventType, err := urlParam(r, "eventType")
	if err != nil {
		return 0, nil, err
	}
	txnID, err := urlParam(r, "txnId")
	if err != nil {
		return 0, nil, err
	}
	var req sendToDeviceRequest
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	c := callerFrom(r.Context())
	key := c.UserID + "\x00" + c.DeviceID + "\x00" + txnID
	if s.toDeviceTxns.seen(key) {
		return http.StatusOK, struct{}{}, nil
	}
	var msgs []persistence.ToDeviceMessage
	remote := map[string]map[string]json.RawMessage{}
	for userID, byDevice := range req.Messages {
		if !s.isLocalUser(userID) {
			for _, content := range byDevice {
				if len(content) == 0 || content[0] != '{' {
					return 0, nil, errBadJSON("each message's content must be a JSON object")
				}
			}
			remote[userID] = byDevice
			continue
		}
		for deviceID, content := range byDevice {
			if len(content) == 0 || content[0] != '{' {
				return 0, nil, errBadJSON("each message's content must be a JSON object")
			}
			targets := []string{deviceID}
			if deviceID == "*" {
				localpart := strings.TrimPrefix(strings.SplitN(userID, ":", 2)[0], "@")
				devices, err := s.store.ListDevices(r.Context(), localpart)
				if err != nil {
					return 0, nil, err
				}
				targets = targets[:0]
				for _, d := range devices {
					targets = append(targets, d.DeviceID)
				}
			}
			for _, d := range targets {
				msgs = append(msgs, persistence.ToDeviceMessage{
					UserID: userID, DeviceID: d, Sender: c.UserID, Type: eventType, Content: content,
				})
			}
			if len(msgs) > maxToDeviceMessages {
				return 0, nil, matrixError(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "too many to-device messages in one request")
			}
		}
	}
	if len(msgs) > 0 {
		positions, err := s.store.SendToDevice(r.Context(), msgs)
		if err != nil {
			return 0, nil, err
		}
		latest := map[string]persistence.StreamPos{}
		for i, m := range msgs {
			latest[m.UserID] = max(latest[m.UserID], positions[i])
		}
		for userID, pos := range latest {
			s.publish(&messages.RoomAdvanced{StreamPos: int64(pos), Users: []string{userID}})
		}
	}
	if len(remote) > 0 && s.opts.EDUs != nil {
		// Remote devices get theirs through their servers.
		if err := s.opts.EDUs.ToDevice(r.Context(), c.UserID, eventType, remote); err != nil {
			return 0, nil, err
		}
	}
	s.toDeviceTxns.remember(key)
	return http.StatusOK, struct{}{}, nil
}

// toDeviceTxnTTL is how long a to-device transaction ID is remembered.
const toDeviceTxnTTL = 30 * time.Minute

// txnSet remembers recently completed transaction keys.
type txnSet struct {
	mu   sync.Mutex
	keys map[string]time.Time
}

func (t *txnSet) seen(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.keys[key]
	return ok && time.Since(at) < toDeviceTxnTTL
}

func (t *txnSet) remember(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.keys == nil {
		t.keys = map[string]time.Time{}
	}
	now := time.Now()
	if len(t.keys) >= 1<<16 {
		for k, at := range t.keys {
			if now.Sub(at) >= toDeviceTxnTTL {
				delete(t.keys, k)
			}
		}
	}
	t.keys[key] = now
}

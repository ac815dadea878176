package httpapi

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/persistence"
)

// What local users do that other servers should see: the handlers tell
// Options.EDUs after the local change is made. A failure to queue is
// logged and does not fail the request, except for to-device messages,
// which would otherwise be lost without the sender knowing.

// FederationEDUs queues local users' EDUs for the servers that should see
// them (*federation.OutboundEDUs). Presence is wired beside the handlers
// (the presence tracker tells of its changes).
type FederationEDUs interface {
	Typing(ctx context.Context, roomID, userID string, typing bool) error
	Receipt(ctx context.Context, roomID, userID, eventID, threadID string, ts int64) error
	DeviceListUpdate(ctx context.Context, userID string, streamID int64, devices []federation.DeviceUpdate) error
	SigningKeyUpdate(ctx context.Context, userID string, master, selfSigning json.RawMessage) error
	ToDevice(ctx context.Context, sender, eventType string, messages map[string]map[string]json.RawMessage) error
}

// federated runs send when federation is on, logging its failure.
func (s *Server) federated(ctx context.Context, what string, send func(FederationEDUs) error) {
	if s.opts.EDUs == nil {
		return
	}
	if err := send(s.opts.EDUs); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("edu", what).Msg("queueing an EDU for other servers failed")
	}
}

// federateDevices tells other servers that the user's devices changed:
// each named device is announced with its current keys, or as deleted
// when it no longer exists.
func (s *Server) federateDevices(ctx context.Context, userID string, pos persistence.StreamPos, deviceIDs ...string) {
	if s.opts.EDUs == nil || len(deviceIDs) == 0 {
		return
	}
	s.federated(ctx, "m.device_list_update", func(e FederationEDUs) error {
		devices, err := s.store.ListDevices(ctx, localpartOf(userID))
		if err != nil {
			return err
		}
		keys, err := s.store.DeviceKeys(ctx, userID, deviceIDs)
		if err != nil {
			return err
		}
		updates := make([]federation.DeviceUpdate, 0, len(deviceIDs))
		for _, id := range deviceIDs {
			i := slices.IndexFunc(devices, func(d persistence.Device) bool { return d.DeviceID == id })
			if i < 0 {
				updates = append(updates, federation.DeviceUpdate{DeviceID: id, Deleted: true})
				continue
			}
			updates = append(updates, federation.DeviceUpdate{DeviceID: id, DisplayName: devices[i].DisplayName, Keys: keys[id]})
		}
		return e.DeviceListUpdate(ctx, userID, int64(pos), updates)
	})
}

// federateSigningKeys tells other servers the user's public cross-signing
// keys (after a change of the master or self-signing key, or a new
// signature of the master key).
func (s *Server) federateSigningKeys(ctx context.Context, userID string) {
	s.federated(ctx, "m.signing_key_update", func(e FederationEDUs) error {
		keys, err := s.store.CrossSigningKeys(ctx, userID)
		if err != nil {
			return err
		}
		var master, ssk json.RawMessage
		if k, ok := keys[persistence.CrossSigningMaster]; ok {
			master = k.Key
		}
		if k, ok := keys[persistence.CrossSigningSelfSigning]; ok {
			ssk = k.Key
		}
		return e.SigningKeyUpdate(ctx, userID, master, ssk)
	})
}

// federateSignatures tells other servers of the new signatures of a
// user's own keys: a signed device is announced as a device list update,
// a signed master key as a signing key update. Signatures of other users'
// master keys (by the signer's user-signing key) are the signer's own
// business and go nowhere.
func (s *Server) federateSignatures(ctx context.Context, sigs []persistence.CrossSigningSignature, positions map[string]persistence.StreamPos) {
	if s.opts.EDUs == nil {
		return
	}
	devices := map[string][]string{}
	masters := map[string]bool{}
	for _, sig := range sigs {
		if sig.TargetUserID != sig.SignerUserID {
			continue
		}
		keys, err := s.store.DeviceKeys(ctx, sig.TargetUserID, []string{sig.TargetKeyID})
		if err == nil && keys[sig.TargetKeyID] != nil {
			if !slices.Contains(devices[sig.TargetUserID], sig.TargetKeyID) {
				devices[sig.TargetUserID] = append(devices[sig.TargetUserID], sig.TargetKeyID)
			}
		} else {
			masters[sig.TargetUserID] = true
		}
	}
	for userID, ids := range devices {
		s.federateDevices(ctx, userID, positions[userID], ids...)
	}
	for userID := range masters {
		s.federateSigningKeys(ctx, userID)
	}
}

// localpartOf is the localpart of a user ID.
func localpartOf(userID string) string {
	lp, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	return lp
}

package httpapi

import (
	"context"
	"encoding/json"
	"slices"
)

// pruneDeviceKeys removes the end-to-end keys and pending to-device
// messages of the user's deleted devices, and tells those who share a room
// with the user that the device list changed (so that their clients stop
// encrypting for the deleted devices). Every path that deletes devices
// calls it afterwards.
func (s *Server) pruneDeviceKeys(ctx context.Context, localpart string) error {
	userID := s.localUserID(localpart)
	var hadKeys map[string]json.RawMessage
	if s.opts.EDUs != nil {
		// Which devices go is known after the pruning: those with keys
		// before and without after.
		var err error
		if hadKeys, err = s.store.DeviceKeys(ctx, userID, nil); err != nil {
			return err
		}
	}
	pruned, pos, err := s.store.PruneDeviceKeys(ctx, userID, localpart)
	if err != nil || !pruned {
		return err
	}
	if err := s.publishDeviceListChange(ctx, userID, pos); err != nil {
		return err
	}
	if len(hadKeys) > 0 {
		left, err := s.store.DeviceKeys(ctx, userID, nil)
		if err != nil {
			return err
		}
		var gone []string
		for id := range hadKeys {
			if _, ok := left[id]; !ok {
				gone = append(gone, id)
			}
		}
		slices.Sort(gone)
		s.federateDevices(ctx, userID, pos, gone...)
	}
	return nil
}

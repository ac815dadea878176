package httpapi

import "context"

// pruneDeviceKeys removes the end-to-end keys and pending to-device
// messages of the user's deleted devices, and tells those who share a room
// with the user that the device list changed (so that their clients stop
// encrypting for the deleted devices). Every path that deletes devices
// calls it afterwards.
func (s *Server) pruneDeviceKeys(ctx context.Context, localpart string) error {
	userID := s.localUserID(localpart)
	pruned, pos, err := s.store.PruneDeviceKeys(ctx, userID, localpart)
	if err != nil || !pruned {
		return err
	}
	return s.publishDeviceListChange(ctx, userID, pos)
}

package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/soma-chat/soma/persistence"
)

// Device management: a user lists, renames and deletes their own devices
// (login sessions). Deleting needs user-interactive authentication and ends
// the device's access token at once.

// maxDeviceDisplayNameLength bounds device display names (in bytes).
const maxDeviceDisplayNameLength = 512

// maxDeleteDevices bounds the devices one POST /delete_devices names.
const maxDeleteDevices = 1000

// clientDevice is a device as the client API shows it. last_seen_ip and
// last_seen_ts are optional and not tracked.
type clientDevice struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
}

func toClientDevice(d persistence.Device) clientDevice {
	return clientDevice{DeviceID: d.DeviceID, DisplayName: d.DisplayName}
}

// listDevices implements GET /devices.
func (s *Server) listDevices(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	devs, err := s.store.ListDevices(r.Context(), c.Localpart)
	if err != nil {
		return 0, nil, err
	}
	out := make([]clientDevice, 0, len(devs))
	for _, d := range devs {
		out = append(out, toClientDevice(d))
	}
	return http.StatusOK, map[string]any{"devices": out}, nil
}

// ownDevice returns the caller's device named by the {deviceId} path
// parameter, or 404 M_NOT_FOUND.
func (s *Server) ownDevice(r *http.Request) (*persistence.Device, error) {
	id, err := urlParam(r, "deviceId")
	if err != nil {
		return nil, err
	}
	devs, err := s.store.ListDevices(r.Context(), callerFrom(r.Context()).Localpart)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.DeviceID == id {
			return &d, nil
		}
	}
	return nil, errNotFound("Unknown device")
}

// getDevice implements GET /devices/{deviceId}.
func (s *Server) getDevice(r *http.Request) (int, any, error) {
	d, err := s.ownDevice(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toClientDevice(*d), nil
}

// updateDevice implements PUT /devices/{deviceId}: a new display name, or
// none when display_name is absent.
func (s *Server) updateDevice(r *http.Request) (int, any, error) {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if req.DisplayName != nil && len(*req.DisplayName) > maxDeviceDisplayNameLength {
		return 0, nil, errInvalidParam("display_name too long")
	}
	d, err := s.ownDevice(r)
	if err != nil {
		return 0, nil, err
	}
	if req.DisplayName == nil {
		return http.StatusOK, struct{}{}, nil
	}
	err = s.store.SetDeviceDisplayName(r.Context(), d.Localpart, d.DeviceID, *req.DisplayName)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, errNotFound("Unknown device") // deleted meanwhile
	}
	if err != nil {
		return 0, nil, err
	}
	// Cached lookups of the device's token still carry the old name.
	s.tokens.forgetUser(d.Localpart, d.DeviceID)
	return http.StatusOK, struct{}{}, nil
}

// deleteDevice implements DELETE /devices/{deviceId}. A device that does
// not exist (any more) counts as deleted, as the spec has it.
func (s *Server) deleteDevice(r *http.Request) (int, any, error) {
	id, err := urlParam(r, "deviceId")
	if err != nil {
		return 0, nil, err
	}
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if challenge, err := s.authenticate(r, req.Auth); challenge != nil || err != nil {
		return http.StatusUnauthorized, challenge, err
	}
	c := callerFrom(r.Context())
	err = s.store.DeleteDevice(r.Context(), c.Localpart, id)
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return 0, nil, err
	}
	s.tokens.forgetUser(c.Localpart, id)
	if err := s.pruneDeviceKeys(r.Context(), c.Localpart); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// deleteDevices implements POST /delete_devices.
func (s *Server) deleteDevices(r *http.Request) (int, any, error) {
	var req struct {
		Devices *[]string       `json:"devices"`
		Auth    json.RawMessage `json:"auth"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Devices == nil {
		return 0, nil, errMissingParam("missing devices")
	}
	if len(*req.Devices) > maxDeleteDevices {
		return 0, nil, errInvalidParam("too many devices at once")
	}
	if challenge, err := s.authenticate(r, req.Auth); challenge != nil || err != nil {
		return http.StatusUnauthorized, challenge, err
	}
	c := callerFrom(r.Context())
	if err := s.store.DeleteDevices(r.Context(), c.Localpart, *req.Devices); err != nil {
		return 0, nil, err
	}
	s.tokens.forgetUser(c.Localpart, "")
	if err := s.pruneDeviceKeys(r.Context(), c.Localpart); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

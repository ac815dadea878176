package rooms

import (
	"slices"
	"testing"

	"github.com/soma-chat/soma/config"
)

// The configuration's default room version must be one the rooms can
// create: the two lists are kept apart only so that config does not
// depend on the room domain.
func TestConfigAcceptsExactlyTheSupportedRoomVersions(t *testing.T) {
	var supported []string
	for v, ok := range SupportedVersions {
		if ok {
			supported = append(supported, v)
		}
	}
	slices.Sort(supported)
	if got := slices.Sorted(slices.Values(config.SupportedRoomVersions)); !slices.Equal(got, supported) {
		t.Fatalf("config accepts room versions %v, the rooms support %v", got, supported)
	}
}

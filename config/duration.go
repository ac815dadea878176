package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in config as Go duration text:
// "5m", "30s", "1h30m". A bare number is refused: it has no unit.
type Duration struct {
	time.Duration
}

// UnmarshalText parses Go duration text (YAML scalars and env values).
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"30s\", \"5m\")", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as Go duration text.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/sirupsen/logrus"
)

type roomID string

func (r roomID) String() string { return "room " + string(r) }

func TestLogrusEntriesArriveInZerologWithTheirFields(t *testing.T) {
	var out, leaked bytes.Buffer
	l := logrus.New()
	l.SetOutput(&leaked)
	routeLogrus(l, zerolog.New(&out).Level(zerolog.DebugLevel))
	routeLogrus(l, zerolog.New(&out).Level(zerolog.DebugLevel)) // again: still one line an entry

	l.WithError(errors.New("boom")).WithFields(logrus.Fields{
		"event_id": "$e", "depth": 7, "room": roomID("!r:x"),
	}).Warn("event auth failed")
	l.Debug("kept at debug")
	l.Trace("dropped: below the zerolog level")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"level": "warn", "message": "event auth failed", "error": "boom",
		"event_id": "$e", "depth": float64(7), "room": "room !r:x",
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (line %s)", k, got[k], want, lines[0])
		}
	}
	if !strings.Contains(lines[1], `"level":"debug"`) {
		t.Errorf("second line: %s", lines[1])
	}
	if leaked.Len() != 0 {
		t.Errorf("logrus still wrote its own output: %q", leaked.String())
	}
	if l.IsLevelEnabled(logrus.TraceLevel) {
		t.Error("logrus builds trace entries that zerolog drops")
	}
}

func TestLogrusLevelsFollowZerologs(t *testing.T) {
	for _, tc := range []struct {
		zl zerolog.Level
		lr logrus.Level
	}{
		{zerolog.TraceLevel, logrus.TraceLevel},
		{zerolog.DebugLevel, logrus.DebugLevel},
		{zerolog.InfoLevel, logrus.InfoLevel},
		{zerolog.WarnLevel, logrus.WarnLevel},
		{zerolog.ErrorLevel, logrus.ErrorLevel},
		{zerolog.FatalLevel, logrus.FatalLevel},
		{zerolog.PanicLevel, logrus.PanicLevel},
	} {
		if got := logrusLevel(tc.zl); got != tc.lr {
			t.Errorf("logrusLevel(%v) = %v, want %v", tc.zl, got, tc.lr)
		}
		if got := zerologLevel(tc.lr); got != tc.zl {
			t.Errorf("zerologLevel(%v) = %v, want %v", tc.lr, got, tc.zl)
		}
	}
	if got := logrusLevel(zerolog.Disabled); got != logrus.PanicLevel {
		t.Errorf("logrusLevel(Disabled) = %v, want panic", got)
	}
}

// TestLogrusFatalIsLoggedBeforeLogrusExits: a fatal entry reaches zerolog
// (without zerolog exiting), and logrus's own exit still runs after.
func TestLogrusFatalIsLoggedBeforeLogrusExits(t *testing.T) {
	var out bytes.Buffer
	l := logrus.New()
	routeLogrus(l, zerolog.New(&out))
	exited := 0
	l.ExitFunc = func(code int) { exited = code }
	l.Fatal("cannot go on")
	if exited != 1 || !strings.Contains(out.String(), `"level":"fatal"`) || !strings.Contains(out.String(), "cannot go on") {
		t.Fatalf("exit code %d, log %q", exited, out.String())
	}
}

package main

import (
	"fmt"
	"io"

	"github.com/rs/zerolog"
	"github.com/sirupsen/logrus"
)

// routeLogrusToZerolog sends what gomatrixserverlib logs (through logrus's
// standard logger; it is the only logrus user among Soma's dependencies)
// into log, so that the process writes one format.
func routeLogrusToZerolog(log zerolog.Logger) {
	routeLogrus(logrus.StandardLogger(), log.With().Str("component", "gomatrixserverlib").Logger())
}

// routeLogrus makes l hand every entry to log at the matching level and
// write nothing itself. l only builds entries log will keep. Calling it
// again replaces the route.
func routeLogrus(l *logrus.Logger, log zerolog.Logger) {
	l.ReplaceHooks(logrus.LevelHooks{})
	l.AddHook(logrusHook{log: log})
	l.SetOutput(io.Discard)
	// logrus formats every entry before writing it, even to io.Discard.
	l.SetFormatter(silentFormatter{})
	l.SetLevel(logrusLevel(log.GetLevel()))
}

// logrusHook writes logrus entries to zerolog. It runs outside logrus's
// lock, so entries from many goroutines do not queue behind one another.
type logrusHook struct{ log zerolog.Logger }

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	// WithLevel, unlike Fatal and Panic, neither exits nor panics: logrus
	// does that itself once its hooks have run.
	ev := h.log.WithLevel(zerologLevel(e.Level))
	if ev == nil {
		return nil
	}
	for k, v := range e.Data {
		switch v := v.(type) {
		case error:
			ev = ev.AnErr(k, v) // Interface would render most errors as {}
		case string:
			ev = ev.Str(k, v)
		case fmt.Stringer:
			ev = ev.Stringer(k, v)
		default:
			ev = ev.Interface(k, v)
		}
	}
	ev.Msg(e.Message)
	return nil
}

// silentFormatter formats every entry as nothing.
type silentFormatter struct{}

func (silentFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

func zerologLevel(l logrus.Level) zerolog.Level {
	switch l {
	case logrus.PanicLevel:
		return zerolog.PanicLevel
	case logrus.FatalLevel:
		return zerolog.FatalLevel
	case logrus.ErrorLevel:
		return zerolog.ErrorLevel
	case logrus.WarnLevel:
		return zerolog.WarnLevel
	case logrus.InfoLevel:
		return zerolog.InfoLevel
	case logrus.DebugLevel:
		return zerolog.DebugLevel
	default:
		return zerolog.TraceLevel
	}
}

// logrusLevel is the logrus level that lets through what a zerolog logger
// at l keeps. A disabled logger keeps nothing, which logrus cannot say:
// its least verbose level, panic, is the nearest.
func logrusLevel(l zerolog.Level) logrus.Level {
	switch l {
	case zerolog.TraceLevel:
		return logrus.TraceLevel
	case zerolog.DebugLevel:
		return logrus.DebugLevel
	case zerolog.InfoLevel:
		return logrus.InfoLevel
	case zerolog.WarnLevel:
		return logrus.WarnLevel
	case zerolog.ErrorLevel:
		return logrus.ErrorLevel
	case zerolog.FatalLevel:
		return logrus.FatalLevel
	default:
		return logrus.PanicLevel
	}
}

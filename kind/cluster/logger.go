package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// kindLogger adapts a *slog.Logger to kind's log.Logger. kind's V(0)
// messages (its user-facing progress) become Info records, higher
// verbosities Debug records. Messages lose the leading and trailing space
// and newlines kind formats its terminal output with.
type kindLogger struct {
	log *slog.Logger
}

var _ kindlog.Logger = kindLogger{}

// Warn logs message at Warn level.
func (l kindLogger) Warn(message string) { l.log.Warn(clean(message)) }

// Warnf logs a formatted message at Warn level.
func (l kindLogger) Warnf(format string, args ...any) {
	l.log.Warn(clean(fmt.Sprintf(format, args...)))
}

// Error logs message at Error level.
func (l kindLogger) Error(message string) { l.log.Error(clean(message)) }

// Errorf logs a formatted message at Error level.
func (l kindLogger) Errorf(format string, args ...any) {
	l.log.Error(clean(fmt.Sprintf(format, args...)))
}

// V returns the InfoLogger of kind's verbosity level.
func (l kindLogger) V(level kindlog.Level) kindlog.InfoLogger {
	lv := slog.LevelInfo
	if level > 0 {
		lv = slog.LevelDebug
	}
	return kindInfoLogger{log: l.log, level: lv}
}

// kindInfoLogger is kind's InfoLogger for one slog level.
type kindInfoLogger struct {
	log   *slog.Logger
	level slog.Level
}

// Info logs message at the logger's level.
func (l kindInfoLogger) Info(message string) {
	l.log.Log(context.Background(), l.level, clean(message))
}

// Infof logs a formatted message at the logger's level.
func (l kindInfoLogger) Infof(format string, args ...any) {
	if l.Enabled() {
		l.log.Log(context.Background(), l.level, clean(fmt.Sprintf(format, args...)))
	}
}

// Enabled reports whether the slog logger records the logger's level.
func (l kindInfoLogger) Enabled() bool {
	return l.log.Enabled(context.Background(), l.level)
}

// clean trims the spaces and newlines around a kind message.
func clean(message string) string { return strings.TrimSpace(message) }

// orDiscard returns log, or a logger that discards everything when log is nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

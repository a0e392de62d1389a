package redact

import (
	"context"
	"log/slog"
)

// A handler cuts secrets from log messages and string attributes.
type handler struct {
	h      slog.Handler
	redact func(string) string
}

// Handler returns a handler that passes every record to h with redact
// applied to its message and to the printed form of every string, error
// or other non-numeric attribute (groups included). Errors of libraries we
// do not control, such as go-sdk's, quote URLs and headers; this is where
// they are caught.
//
// A handler that already redacts (the binary's logger handed to the
// library, which adds the secrets of its own options) is not wrapped
// again: the two redactions are composed, so a record is rebuilt once.
func Handler(h slog.Handler, redact func(string) string) slog.Handler {
	if inner, ok := h.(handler); ok {
		first := inner.redact
		return handler{inner.h, func(s string) string { return redact(first(s)) }}
	}
	return handler{h, redact}
}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return handler{h.h.WithAttrs(red), h.redact}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{h.h.WithGroup(name), h.redact}
}

func (h handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, ga := range g {
			red[i] = h.attr(ga)
		}
		return slog.Group(a.Key, red...)
	case slog.KindString, slog.KindAny:
		// Errors and other values print through String or Error; redact
		// the printed form.
		return slog.String(a.Key, h.redact(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// writeError sends err as a JSON error and logs its cause. The status,
// type and client message are apierr.From's: errors carry their own.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := apierr.From(err)
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", e.Status), slog.String("type", string(e.Kind))}
	if e.Err != nil { // a refusal we made ourselves has no cause to log
		attrs = append(attrs, slog.Any("err", e.Err))
	}
	h.log.LogAttrs(r.Context(), e.LogLevel(), "request failed", attrs...)
	apierr.Write(w, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		apierr.Write(w, apierr.From(err))
		return
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte{'\n'})
}

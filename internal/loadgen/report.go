package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// WriteText writes the report for a person: throughput, latency,
// overhead, tokens, errors by kind and the history check, with the
// violations grouped by session (at most 10 sessions shown).
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "load: %d sessions × %d turns against %s", r.Sessions, r.TurnsPerSess, r.URL)
	if len(r.MoreURLs) > 0 {
		fmt.Fprintf(&b, " and %d more, round robin", len(r.MoreURLs))
	}
	fmt.Fprintf(&b, " (run %s", r.RunID)
	if r.ThinkMS > 0 {
		fmt.Fprintf(&b, ", think %v", dur(r.ThinkMS))
	}
	if r.RampMS > 0 {
		fmt.Fprintf(&b, ", ramp %v", dur(r.RampMS))
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "  turns       %d answered, %d failed in %.2f s: %.1f turns/s (%d requests, %d retries)\n",
		r.Turns, r.FailedTurns, r.WallSeconds, r.Throughput, r.Requests, r.Retries)
	fmt.Fprintf(&b, "  latency     %s\n", r.Latency.line())
	fmt.Fprintf(&b, "  overhead    %s (− %v per model call)\n", r.Overhead.line(), dur(r.ModelLatMS))
	if r.TTFT.Count > 0 {
		fmt.Fprintf(&b, "  first token %s\n", r.TTFT.line())
	}
	t := r.TokensPerTurn
	fmt.Fprintf(&b, "  per turn    %.2f model calls; tokens: input %.1f, output %.1f, cache write %.1f, cache read %.1f\n",
		r.ModelCallsPerTurn, t.Input, t.Output, t.CacheCreation, t.CacheRead)
	if len(r.Errors) == 0 {
		b.WriteString("  errors      none\n")
	} else {
		kinds := slices.Sorted(maps.Keys(r.Errors))
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%s ×%d", k, r.Errors[k])
		}
		fmt.Fprintf(&b, "  errors      %s\n", strings.Join(parts, ", "))
	}
	r.History.writeText(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func (h *HistoryReport) writeText(b *strings.Builder) {
	switch h.Method {
	case "", "none":
		if h.Method == "" {
			b.WriteString("  history     not checked\n")
		} else {
			b.WriteString("  history     not checked: the server has no session API and its answers are not simulator echoes\n")
		}
		return
	}
	var via []string
	if strings.Contains(h.Method, "session_api") {
		via = append(via, fmt.Sprintf("%d sessions read back through the session API", h.SessionsChecked))
	}
	if strings.Contains(h.Method, "echo") {
		via = append(via, fmt.Sprintf("%d answers' echoes", h.EchoAnswers))
	}
	fmt.Fprintf(b, "  history     %d violations (%s", h.Violations, strings.Join(via, ", "))
	if h.SessionsUnchecked > 0 {
		fmt.Fprintf(b, "; %d sessions could not be read", h.SessionsUnchecked)
	}
	b.WriteString(")\n")
	if h.Violations == 0 {
		return
	}
	kinds := slices.Sorted(maps.Keys(h.ByKind))
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, h.ByKind[k])
	}
	fmt.Fprintf(b, "              in %d sessions: %s\n", h.Sessions, strings.Join(parts, ", "))
	// Group by session, keeping the report's order.
	type group struct {
		id    string
		kinds map[string][]int
		order []string
		first string
	}
	var groups []*group
	byID := map[string]*group{}
	for _, v := range h.Details {
		g := byID[v.Session]
		if g == nil {
			g = &group{id: v.Session, kinds: map[string][]int{}, first: v.Detail}
			byID[v.Session] = g
			groups = append(groups, g)
		}
		if _, ok := g.kinds[v.Kind]; !ok {
			g.order = append(g.order, v.Kind)
		}
		g.kinds[v.Kind] = append(g.kinds[v.Kind], v.Turn)
	}
	for i, g := range groups {
		if i == 10 {
			fmt.Fprintf(b, "    … and %d more sessions (-json lists every violation)\n", h.Sessions-10)
			break
		}
		parts := make([]string, len(g.order))
		for j, k := range g.order {
			parts[j] = k + turnList(g.kinds[k])
		}
		fmt.Fprintf(b, "    %s: %s (%s)\n", g.id, strings.Join(parts, "; "), g.first)
	}
}

// turnList writes turns as "turn 3" or "turns 3, 7, 9"; zero stands for
// the session as a whole and is left out.
func turnList(turns []int) string {
	var s []string
	for _, t := range slices.Compact(turns) {
		if t != 0 {
			s = append(s, fmt.Sprint(t))
		}
	}
	switch {
	case len(s) == 0:
		return ""
	case len(s) == 1:
		return " turn " + s[0]
	case len(s) > 12:
		s = append(s[:12], "…")
	}
	return " turns " + strings.Join(s, ", ")
}

func (s Summary) line() string {
	if s.Count == 0 {
		return "no answered turns"
	}
	return fmt.Sprintf("min %s  p50 %s  p90 %s  p99 %s  max %s  mean %s",
		msText(s.Min), msText(s.P50), msText(s.P90), msText(s.P99), msText(s.Max), msText(s.Mean))
}

func msText(v float64) string {
	switch {
	case v >= 1000 || v <= -1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}

func dur(msv float64) time.Duration { return time.Duration(msv * float64(time.Millisecond)) }

package loadgen

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Violation kinds, as reported in [HistoryReport.ByKind].
const (
	// KindLost: an acknowledged turn is missing from the stored history,
	// or the model saw fewer messages than the turn's history holds.
	KindLost = "lost"
	// KindDuplicated: a turn is stored twice, or the model saw more
	// messages than the turn's history holds.
	KindDuplicated = "duplicated"
	// KindOutOfOrder: a turn is stored after a later one.
	KindOutOfOrder = "out_of_order"
	// KindCrossed: a turn of another session (or another run) is stored
	// in this one, or the model answered another turn's message.
	KindCrossed = "crossed"
	// KindUnexpected: a turn the server never acknowledged (and never
	// failed) is stored.
	KindUnexpected = "unexpected"
	// KindTurnNumber: the answer's "turn" is not the turn's number.
	KindTurnNumber = "turn_number"
)

// A Violation is one way a session's history is not what its turns made.
type Violation struct {
	Session string `json:"session"`
	// Turn is the turn concerned; zero when the session as a whole is.
	Turn   int    `json:"turn,omitempty"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	// Source is where it was seen: "answer" (a turn's reply) or "session"
	// (the stored history from the session API).
	Source string `json:"source"`
}

// marker is the message of one turn: lg:RUN:SESSION:TURN.
type marker struct {
	run     string
	session int
	turn    int
}

func (m marker) String() string { return fmt.Sprintf("lg:%s:%d:%d", m.run, m.session, m.turn) }

var markerRE = regexp.MustCompile(`lg:([0-9a-z]+):(\d+):(\d+)`)

// findMarker finds the first marker in text.
func findMarker(text string) (marker, bool) {
	m := markerRE.FindStringSubmatch(text)
	if m == nil {
		return marker{}, false
	}
	s, err1 := strconv.Atoi(m[2])
	t, err2 := strconv.Atoi(m[3])
	if err1 != nil || err2 != nil {
		return marker{}, false
	}
	return marker{run: m[1], session: s, turn: t}, true
}

// echoRE matches the simulator's echo reply (see internal/claudesim).
var echoRE = regexp.MustCompile(`(?s)^echo: (.*) \(messages: (\d+)\)$`)

// parseEcho returns the last user text and message count an echo reply
// reports, or ok false when text is not an echo.
func parseEcho(text string) (last string, n int, ok bool) {
	m := echoRE.FindStringSubmatch(strings.TrimSpace(text))
	if m == nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return "", 0, false
	}
	return m[1], n, true
}

// checkEcho compares an echo reply with the turn it answers, whose
// message was want and which was the n-th message of its history.
func checkEcho(id string, turn int, want string, wantN int, text, source string) []Violation {
	last, n, ok := parseEcho(text)
	if !ok {
		return nil
	}
	var out []Violation
	if last != want {
		out = append(out, Violation{Session: id, Turn: turn, Kind: KindCrossed, Source: source,
			Detail: fmt.Sprintf("the model answered %q, not this turn's %q", clip(last), want)})
	}
	switch {
	case n < wantN:
		out = append(out, Violation{Session: id, Turn: turn, Kind: KindLost, Source: source,
			Detail: fmt.Sprintf("the model saw %d messages, want %d", n, wantN)})
	case n > wantN:
		out = append(out, Violation{Session: id, Turn: turn, Kind: KindDuplicated, Source: source,
			Detail: fmt.Sprintf("the model saw %d messages, want %d", n, wantN)})
	}
	return out
}

// message is a stored Messages API message, reduced to its role and text.
type message struct {
	role string
	text string
}

func decodeMessage(raw json.RawMessage) (message, error) {
	var m struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return message{}, err
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return message{role: m.Role, text: s}, nil
	}
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return message{}, err
	}
	var texts []string
	for _, b := range blocks {
		if b.Type == "text" {
			texts = append(texts, b.Text)
		}
	}
	return message{role: m.Role, text: strings.Join(texts, "\n")}, nil
}

// sessionState is what the run knows of one session at the end.
type sessionState struct {
	index int
	id    string
	// acked is the number of turns answered 200: turns 1..acked.
	acked int
	// failed is the turn that failed after its retries (acked+1), or zero:
	// it may or may not have been stored.
	failed int
}

// checkTranscript compares a session's stored messages with its turns.
func checkTranscript(run string, s sessionState, raw []json.RawMessage) []Violation {
	var out []Violation
	add := func(turn int, kind, format string, args ...any) {
		out = append(out, Violation{Session: s.id, Turn: turn, Kind: kind, Source: "session", Detail: fmt.Sprintf(format, args...)})
	}
	msgs := make([]message, len(raw))
	for i, r := range raw {
		m, err := decodeMessage(r)
		if err != nil {
			add(0, KindCrossed, "message %d is not a Messages API message: %v", i, err)
			continue
		}
		msgs[i] = m
	}
	seen := make(map[int]int)
	latest := 0
	for j, m := range msgs {
		if m.role != "user" {
			continue
		}
		mk, ok := findMarker(m.text)
		if !ok {
			continue // a tool result, or a message of the server's own
		}
		if mk.run != run || mk.session != s.index {
			add(mk.turn, KindCrossed, "message %d is %s, a turn of another session or run", j, mk)
			continue
		}
		seen[mk.turn]++
		switch {
		case seen[mk.turn] > 1:
			add(mk.turn, KindDuplicated, "turn %d stored again at message %d", mk.turn, j)
		case mk.turn < latest:
			add(mk.turn, KindOutOfOrder, "turn %d stored at message %d, after turn %d", mk.turn, j, latest)
		}
		latest = max(latest, mk.turn)
		if mk.turn > s.acked && mk.turn != s.failed {
			add(mk.turn, KindUnexpected, "turn %d is stored but was never acknowledged (last acknowledged: %d)", mk.turn, s.acked)
		}
	}
	var lost []int
	for t := 1; t <= s.acked; t++ {
		if seen[t] == 0 {
			lost = append(lost, t)
		}
	}
	for _, t := range lost {
		add(t, KindLost, "acknowledged turn %d is not in the stored history (%d messages)", t, len(raw))
	}
	return out
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "…"
	}
	return s
}

package redisstore

import (
	"strconv"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/session"
)

// FuzzParseState feeds the decoder of the Begin/Load script's reply with
// arbitrary replies: it never panics, and what it accepts is exactly what
// the reply held (see #13: the store's reply decoding is a parser too).
// msgs (a legacy LIST reply) and meta are NUL-separated strings; an odd meta makes an odd
// HGETALL reply, which must be refused.
func FuzzParseState(f *testing.F) {
	f.Add("", "")
	f.Add(`{"role":"user","content":"hi"}`, "turns\x001\x00c:input_tokens\x0012")
	f.Add("a\x00b", "pending\x00abc@0\x00pinned\x00{}\x00turns\x00x")
	f.Add("", "turns")
	f.Fuzz(func(t *testing.T, msgs, meta string) {
		var ms, fields []any
		if msgs != "" {
			for _, m := range strings.Split(msgs, "\x00") {
				ms = append(ms, m)
			}
		}
		var kv []string
		if meta != "" {
			kv = strings.Split(meta, "\x00")
			for _, m := range kv {
				fields = append(fields, m)
			}
		}
		st, ok := parseState(fields, []any{ms})
		if !ok {
			return
		}
		if len(kv)%2 != 0 {
			t.Fatalf("accepted an odd HGETALL reply %q", kv)
		}
		if st.Version != int64(len(ms)) || len(st.Messages) != len(ms) {
			t.Fatalf("version %d, %d messages; want %d", st.Version, len(st.Messages), len(ms))
		}
		for i, m := range ms {
			if string(st.Messages[i]) != m.(string) {
				t.Fatalf("message %d = %q, want %q", i, st.Messages[i], m)
			}
		}
		for i := 0; i < len(kv); i += 2 {
			f, v := kv[i], kv[i+1]
			switch {
			case f == "pending", f == "pinned":
			case f == "turns":
				if n, _ := strconv.ParseInt(v, 10, 64); st.Turns != n {
					t.Fatalf("turns %d, want %s", st.Turns, v)
				}
			default:
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					t.Fatalf("accepted field %q with a value %q that is not a number", f, v)
				}
			}
		}
	})
}

// FuzzReadHistory feeds the history decoder with arbitrary hist and hlen
// strings: it never panics, and what it accepts cuts hist exactly, every
// message a non-empty view, joined by single commas.
func FuzzReadHistory(f *testing.F) {
	f.Add("", "")
	f.Add(`{"a":1},{"b":2}`, "\x00\x00\x00\x07\x00\x00\x00\x07")
	f.Add(`{"a":1}{"b":2}`, "\x00\x00\x00\x07\x00\x00\x00\x07")
	f.Add(`{"a":1}`, "\x00\x00\x00\x08")
	f.Add(`x`, "\x00\x00\x00")
	f.Fuzz(func(t *testing.T, hist, hlen string) {
		msgs, ok := readHistory([]any{hist, hlen})
		if !ok {
			return
		}
		if len(msgs) != len(hlen)/4 || len(hlen)%4 != 0 {
			t.Fatalf("%d messages from %d bytes of lengths", len(msgs), len(hlen))
		}
		parts := make([]string, len(msgs))
		for i, m := range msgs {
			if len(m) == 0 {
				t.Fatalf("message %d is empty", i)
			}
			parts[i] = string(m)
		}
		if got := strings.Join(parts, ","); got != hist {
			t.Fatalf("messages join to %q, want %q", got, hist)
		}
		if j, ok := session.Joined(msgs); !ok || string(j) != hist {
			t.Fatalf("Joined = %q, %v; want a view of hist", j, ok)
		}
	})
}

// FuzzParseToolResults does the same for the saved tool results.
func FuzzParseToolResults(f *testing.F) {
	f.Add("")
	f.Add("toolu_1\x00{\"type\":\"tool_result\"}")
	f.Add("odd")
	f.Fuzz(func(t *testing.T, fields string) {
		var fs []any
		var kv []string
		if fields != "" {
			kv = strings.Split(fields, "\x00")
			for _, s := range kv {
				fs = append(fs, s)
			}
		}
		got, ok := parseToolResults(fs)
		if !ok {
			if len(kv)%2 == 0 {
				t.Fatalf("refused an even reply of strings %q", kv)
			}
			return
		}
		if len(kv)%2 != 0 {
			t.Fatalf("accepted an odd reply %q", kv)
		}
		for i := 0; i < len(kv); i += 2 {
			if string(got[kv[i]]) == "" && kv[i+1] != "" {
				t.Fatalf("result of %q lost", kv[i])
			}
		}
	})
}

// FuzzReadTail feeds the decoder of Begin's history from a cut with
// arbitrary replies: it never panics, and what it accepts is consistent:
// the tail cut as readHistory cuts it, a cut that has messages after it,
// and a whole-history size that counts the tail's messages.
func FuzzReadTail(f *testing.F) {
	f.Add("", "", int64(0), int64(0), int64(0))
	f.Add(`{"a":1},{"b":2}`, "\x00\x00\x00\x07\x00\x00\x00\x07", int64(0), int64(0), int64(15))
	f.Add(`{"b":2}`, "\x00\x00\x00\x07", int64(1), int64(1), int64(15))
	f.Add(``, "", int64(3), int64(1), int64(15))
	f.Fuzz(func(t *testing.T, hist, hlen string, first, starts, histLen int64) {
		msgs, gotFirst, gotStarts, size, ok := readTail([]any{hist, hlen, first, starts, histLen})
		if !ok {
			return
		}
		want, ok := readHistory([]any{hist, hlen})
		if !ok || len(want) != len(msgs) {
			t.Fatalf("accepted a tail readHistory refuses, or cut it otherwise")
		}
		if gotFirst != first || gotStarts != starts || first < 0 || starts > first || first > 0 && len(msgs) == 0 {
			t.Fatalf("first %d starts %d of %d messages accepted", gotFirst, gotStarts, len(msgs))
		}
		tail := int64(0)
		for _, m := range msgs {
			tail += int64(len(m))
		}
		if size < tail {
			t.Fatalf("size %d below the tail's %d bytes", size, tail)
		}
	})
}

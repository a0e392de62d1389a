package agent

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDropThinking checks the fast path of dropThinking against decoding:
// on every valid message it accepts, the result is the same, byte for
// byte, so a window session's requests (and their prompt cache) are what
// decoding made. A block with its "type" key twice is left out: decoding
// takes the last, the fast path the first, and neither the API nor this
// package writes one.
func FuzzDropThinking(f *testing.F) {
	f.Add([]byte(`{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"abc"},{"type":"text","text":"Hi <b> & \u2028"}]}`))
	f.Add([]byte(`{"role":"assistant","content":[{"type":"redacted_thinking","data":"x"}]}`))
	f.Add([]byte(`{"role":"assistant","content":[{"type":"text", "text":"a,b]}"} , {"type":"thinking","thinking":"\"[{"}]}`))
	f.Add([]byte(`{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"n","input":{"type":"thinking"}},{"type":"thinking","thinking":""}]}`))
	f.Add([]byte(`{"role":"assistant","content":[{"type":"text","text":"thinking"}]}`))
	f.Add([]byte(`{"role":"assistant","content":[],"x":["thinking"]}`))
	f.Fuzz(func(t *testing.T, m []byte) {
		if !json.Valid(m) {
			return
		}
		fast, ok := fastDropThinking(m)
		if !ok {
			return
		}
		blocks, _ := splitArray(m[len(assistantContentPrefix)-1 : len(m)-1])
		for _, b := range blocks {
			if bytes.Count(b, []byte(`"type"`)) > 1 && bytes.HasPrefix(b, thinkingBlockPrefix) {
				return
			}
		}
		if want := decodedDropThinking(m); !bytes.Equal(fast, want) {
			t.Fatalf("fast path of %s:\n%s\nwant (decoding):\n%s", m, fast, want)
		}
	})
}

// splitArray splits what json.Unmarshal splits.
func FuzzSplitArray(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(` [ 1 , "a,b" , {"c":[1,2]} , [ ] ] `))
	f.Add([]byte(`["\\", "\""]`))
	f.Fuzz(func(t *testing.T, a []byte) {
		var want []json.RawMessage
		if json.Unmarshal(a, &want) != nil {
			return
		}
		got, ok := splitArray(a)
		if !ok || len(got) != len(want) {
			t.Fatalf("splitArray(%s) = %d elements, %v; want %d", a, len(got), ok, len(want))
		}
		for i := range got {
			var g, w bytes.Buffer
			_ = json.Compact(&g, got[i])
			_ = json.Compact(&w, want[i])
			if !bytes.Equal(g.Bytes(), w.Bytes()) {
				t.Fatalf("element %d = %s; want %s", i, got[i], want[i])
			}
		}
	})
}

package stream_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/stream"
)

// What AppendSSE writes, ReadSSE reads back: id, name and data, also for
// data of several lines and empty data.
func FuzzSSERoundTrip(f *testing.F) {
	f.Add(int64(1), "text_delta", []byte(`{"text":"hi"}`), int64(2), "turn_end", []byte(`{"response":"a\nb"}`))
	f.Add(int64(0), "", []byte(""), int64(9007199254740993), "error", []byte("\n\n data: x\nid: 3\n"))
	f.Fuzz(func(t *testing.T, s1 int64, n1 string, d1 []byte, s2 int64, n2 string, d2 []byte) {
		in := []stream.Event{{Seq: s1, Name: n1, Data: d1}, {Seq: s2, Name: n2, Data: d2}}
		for _, ev := range in {
			if ev.Seq < 0 || strings.ContainsAny(ev.Name, "\r\n") || bytes.ContainsRune(ev.Data, '\r') {
				t.Skip("not an event of the API: negative id, a name of several lines, or a CR in the data")
			}
		}
		var b []byte
		for _, ev := range in {
			b = stream.AppendSSE(b, ev)
		}
		var out []stream.Event
		if err := stream.ReadSSE(bytes.NewReader(b), func(ev stream.Event) error {
			out = append(out, ev)
			return nil
		}); err != nil {
			t.Fatalf("read back %q: %v", b, err)
		}
		if len(out) != 2 {
			t.Fatalf("read %d events from %q, want 2", len(out), b)
		}
		for i := range in {
			if out[i].Seq != in[i].Seq || out[i].Name != in[i].Name || !bytes.Equal(out[i].Data, in[i].Data) {
				t.Errorf("event %d: wrote %+v, read %+v", i, in[i], out[i])
			}
		}
	})
}

// ReadSSE takes any input without panicking, and an error from fn stops
// it with that error.
func FuzzReadSSE(f *testing.F) {
	f.Add([]byte("id: 1\nevent: turn_start\ndata: {}\n\n: comment\nid: x\n\n"))
	f.Add([]byte("data: no id\n\n"))
	f.Add([]byte("id: 2\r\nevent: e\r\ndata: a\r\ndata: b\r\n\r\n"))
	stop := errors.New("stop")
	f.Fuzz(func(t *testing.T, in []byte) {
		n := 0
		err := stream.ReadSSE(bytes.NewReader(in), func(ev stream.Event) error {
			n++
			if ev.Seq < 0 && !bytes.Contains(in, []byte("-")) {
				t.Errorf("negative id %d from input without a minus", ev.Seq)
			}
			return stop
		})
		if n > 0 && !errors.Is(err, stop) {
			t.Errorf("fn's error was not returned: %v", err)
		}
	})
}

package stream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// AppendSSE appends ev as a server-sent event: its id (Seq), its name and
// its data, one data line per line of it (SSE has no escapes). [ReadSSE]
// reads it back, but for a "\r" in the data, which SSE also takes for a
// line end; JSON data has none. The name must be one line.
func AppendSSE(b []byte, ev Event) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, ev.Seq, 10)
	b = append(b, "\nevent: "...)
	b = append(b, ev.Name...)
	b = append(b, '\n')
	for line := range bytes.SplitSeq(ev.Data, []byte{'\n'}) {
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
	}
	return append(b, '\n')
}

// maxSSELine bounds one line of an event stream read by [ReadSSE]: a
// turn_end carries the whole answer.
const maxSSELine = 16 << 20

// ReadSSE reads server-sent events from r, as a client of the HTTP API
// does, and calls fn with each: its id as Seq, its name and its data
// (data lines joined with "\n"). It stops at the end of r, or when fn
// returns an error, which it returns. An event without an id, or one
// that is not a number, is an error: every event of the API has one.
func ReadSSE(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	var ev Event
	var data [][]byte
	var hasID bool
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte{'\r'})
		if len(line) == 0 {
			if ev.Name == "" && data == nil {
				continue
			}
			if !hasID {
				return fmt.Errorf("stream: event %q without an id", ev.Name)
			}
			ev.Data = bytes.Join(data, []byte{'\n'})
			if err := fn(ev); err != nil {
				return err
			}
			ev, data, hasID = Event{}, nil, false
			continue
		}
		if line[0] == ':' {
			continue // a comment
		}
		field, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(field) {
		case "id":
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil {
				return fmt.Errorf("stream: event id %q is not a number", value)
			}
			ev.Seq, hasID = n, true
		case "event":
			ev.Name = string(value)
		case "data":
			data = append(data, bytes.Clone(value))
		}
	}
	return sc.Err()
}

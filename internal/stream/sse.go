package stream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

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
		line := sc.Bytes()
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
